"""Replay of logged lists: the scorer that served a list reorders it as it was shown."""

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from recommender.learning.replay import replay
from recommender.models import ServedList
from recommender.serving import served_lists
from recommender.serving.ranking import BlendScorer
from recommender.spaces import embedding

pytestmark = pytest.mark.django_db
API = "/api/v1"


@pytest.fixture
def clicked(settings, hashing_space, make_items):
    """Alice liked two items, was shown a list of 5 and clicked its third item."""
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    items = make_items(12)
    embedding.embed_items(hashing_space, [item.pk for item in items])
    client = APIClient()
    for item in items[:2]:
        event = {"user": "alice", "item": item.external_id, "kind": "like"}
        assert client.post(f"{API}/behaviours", event, format="json").status_code == 201
    body = client.get(f"{API}/users/alice/recommendations", {"k": 5, "explain": "false"}).json()
    third = body["items"][2]["id"]
    event = {"user": "alice", "item": third, "kind": "click",
             "recommendation_id": body["recommendation_id"], "position": 3}  # fmt: skip
    assert client.post(f"{API}/behaviours", event, format="json").status_code == 201
    served_lists.drain()
    return body


def test_replaying_with_the_serving_scorer_gives_back_the_logged_order(clicked):
    report = replay(BlendScorer())
    assert (report.lists, report.engagements) == (1, 1)
    assert report.mrr_logged == pytest.approx(1 / 3)
    assert report.mrr_replayed == pytest.approx(report.mrr_logged)  # same features, same order
    assert report.found == 1.0


def test_another_scorer_reorders_the_shown_items(clicked):
    # Freshness alone: the newest items first, whatever the user's taste.
    muted = ("similarity", "cooccurrence", "popularity", "category_affinity", "keyword_match")
    report = replay(BlendScorer({name: 0.0 for name in muted} | {"freshness": 5.0}))
    assert report.lists == 1 and 0.2 <= report.mrr_replayed <= 1.0


def test_the_command_prints_the_replay_and_refuses_an_empty_log(clicked, capsys):
    call_command("replay_lists")
    assert "MRR as shown 0.3333, replayed 0.3333" in capsys.readouterr().out
    ServedList.objects.all().delete()
    with pytest.raises(CommandError, match="no list to replay"):
        call_command("replay_lists")
