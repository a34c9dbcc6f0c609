"""Rotation: items shown again and again without an engagement sink in the next list."""

import pytest
from rest_framework.test import APIClient

from recommender.models import Scenario
from recommender.serving import exposure
from recommender.spaces import embedding

pytestmark = pytest.mark.django_db
API = "/api/v1"


@pytest.fixture
def shop(settings, hashing_space, make_items):
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    items = make_items(12)
    embedding.embed_items(hashing_space, [item.pk for item in items])
    Scenario.objects.create(name="rotating", k=3, demote_after=2, demotion=0.01)
    Scenario.objects.create(name="fixed", k=3)
    client = APIClient()
    event = {"user": "alice", "item": items[0].external_id, "kind": "like"}
    assert client.post(f"{API}/behaviours", event, format="json").status_code == 201
    return items


def listed(client, scenario: str) -> dict:
    return client.get(f"{API}/users/alice/recommendations", {"scenario": scenario}).json()


def show(client, body: dict, times: int) -> None:
    for _ in range(times):
        for n, entry in enumerate(body["items"], start=1):
            event = {"user": "alice", "item": entry["id"], "kind": "impression",
                     "recommendation_id": body["recommendation_id"], "position": n}  # fmt: skip
            assert client.post(f"{API}/behaviours", event, format="json").status_code == 201


def test_an_impression_only_users_ignored_items_are_demoted_on_the_next_list(shop):
    client = APIClient()
    first = listed(client, "rotating")
    shown = {entry["id"] for entry in first["items"]}
    show(client, first, times=1)
    assert {e["id"] for e in listed(client, "rotating")["items"]} == shown  # once is not enough
    show(client, first, times=1)
    after = {entry["id"] for entry in listed(client, "rotating")["items"]}
    assert not after & shown
    # A placement without rotation still shows them.
    assert {entry["id"] for entry in listed(client, "fixed")["items"]} == shown


def test_an_engaged_item_is_not_demoted(shop):
    client = APIClient()
    first = listed(client, "rotating")
    show(client, first, times=2)
    clicked = first["items"][0]["id"]
    event = {"user": "alice", "item": clicked, "kind": "click",
             "recommendation_id": first["recommendation_id"], "position": 1}  # fmt: skip
    assert client.post(f"{API}/behaviours", event, format="json").status_code == 201
    ignored = exposure.ignored_items(shop[0].behaviours.first().user_id, 2)
    assert {e["id"] for e in first["items"][1:]} == {
        item.external_id for item in type(shop[0]).objects.filter(pk__in=ignored)
    }
