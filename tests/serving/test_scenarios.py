"""Scenarios: named placements whose defaults shape the lists every endpoint serves."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from recommender.admin import ScenarioAdminForm
from recommender.models import Behaviour, EndUser, Experiment, Item, Promotion, Scenario, Variant
from recommender.serving import experiments, scenarios
from recommender.spaces import embedding

pytestmark = pytest.mark.django_db
API = "/api/v1"


@pytest.fixture
def shop(settings, hashing_space):
    """Twelve items in two categories, an active hashing space, and a shopper; item n has
    been bought by n other users (popularity grows with n)."""
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    items = [
        Item.objects.create(
            external_id=f"i{n:02d}", title=f"商品 {n} 绿茶" if n % 2 else f"item {n} mug",
            category="tea" if n % 2 else "home",
        )
        for n in range(12)
    ]  # fmt: skip
    embedding.embed_items(hashing_space, [item.pk for item in items])
    for n, item in enumerate(items):
        for m in range(n):
            other = EndUser.objects.get_or_create(external_id=f"buyer-{m}")[0]
            Behaviour.objects.create(user=other, item=item, kind="purchase")
    EndUser.objects.create(external_id="alice")
    return items


def recs(client, **params):
    response = client.get(f"{API}/users/alice/recommendations", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_a_scenario_fills_what_the_request_left_unsaid(shop):
    Scenario.objects.create(name="home", k=3)
    client = APIClient()
    body = recs(client, scenario="home")
    assert body["scenario"] == "home" and len(body["items"]) == 3
    assert len(recs(client, scenario="home", k=5)["items"]) == 5  # the request's own k wins


def test_the_default_scenario_serves_requests_that_name_none(shop):
    client = APIClient()
    assert recs(client)["scenario"] is None
    assert recs(client, scenario="")["scenario"] is None  # an empty value names none
    Scenario.objects.create(name="everywhere", k=2, is_default=True)
    body = recs(client)
    assert body["scenario"] == "everywhere" and len(body["items"]) == 2


def test_an_unknown_scenario_is_a_400_naming_it(shop):
    response = APIClient().get(f"{API}/users/alice/recommendations", {"scenario": "nope"})
    assert response.status_code == 400
    assert response.json() == {"scenario": ["no scenario named 'nope'"]}


def test_a_scenarios_sources_and_weights_decide_the_list(shop):
    Scenario.objects.create(
        name="bestsellers", sources=["popular"], blend_weights={"popularity": 100.0}, k=4
    )
    body = recs(APIClient(), scenario="bestsellers")
    assert all(item["sources"] == ["popular"] for item in body["items"])
    # Popularity grows with the item number, and it alone ranks this placement.
    assert [item["id"] for item in body["items"]] == ["i11", "i10", "i09", "i08"]


def test_a_scenario_applies_to_search_similar_and_session_lists(shop):
    Scenario.objects.create(name="short", k=2)
    client = APIClient()
    search = client.get(f"{API}/search", {"q": "绿茶", "scenario": "short"}).json()
    similar = client.get(f"{API}/items/i03/similar", {"scenario": "short"}).json()
    session = client.post(
        f"{API}/recommendations", {"positive": ["i03"], "scenario": "short"}, format="json"
    ).json()
    for body in (search, similar, session):
        assert body["scenario"] == "short" and len(body["items"]) == 2, body


def test_the_admin_refuses_what_serving_could_not_read():
    form = ScenarioAdminForm(
        data={
            "name": "broken",
            "sources": '["popular", "psychic"]',
            "blend_weights": '{"vibes": 1}',
            "use_learned_ranker": "on",
            "diversity": "1.5",
        }
    )
    assert not form.is_valid()
    assert "psychic" in form.errors["sources"][0]
    assert "vibes" in form.errors["blend_weights"][0]
    assert "between 0 and 1" in form.errors["diversity"][0]


def test_only_one_scenario_is_the_default(shop):
    Scenario.objects.create(name="a", is_default=True)
    form = ScenarioAdminForm(
        data={
            "name": "b",
            "is_default": "on",
            "sources": "[]",
            "blend_weights": "{}",
            "use_learned_ranker": "on",
        }
    )
    assert not form.is_valid()  # the unique constraint, reported on the form


def _scenario_reads(client, **params) -> int:
    """How many statements one list spent reading scenarios and experiments."""
    with CaptureQueriesContext(connection) as queries:
        recs(client, **params)
    tables = ("recommender_scenario", "recommender_promotion", "recommender_experiment")
    return sum(any(t in q["sql"].split("WHERE")[0] for t in tables) for q in queries)


def test_serving_keeps_the_scenarios_it_read_until_one_is_saved(shop):
    client = APIClient()
    home = Scenario.objects.create(name="home", k=3, is_default=True)
    assert len(recs(client)["items"]) == 3
    assert _scenario_reads(client) == 0  # kept: no statement
    assert _scenario_reads(client, scenario="home") > 0  # another key is read once
    assert _scenario_reads(client, scenario="home") == 0
    home.k = 2
    home.save()  # the admin's save
    assert len(recs(client)["items"]) == 2 and len(recs(client, scenario="home")["items"]) == 2
    Promotion.objects.create(scenario=home, name="autumn", filter='category == "tea"', share=0.5)
    assert [i["promotion"] for i in recs(client)["items"]].count("autumn") == 1
    home.delete()
    assert recs(client)["scenario"] is None
    assert (
        APIClient().get(f"{API}/users/alice/recommendations", {"scenario": "home"}).status_code
        == 400
    )


def test_an_unknown_name_is_never_kept(shop):
    client = APIClient()
    assert (
        client.get(f"{API}/users/alice/recommendations", {"scenario": "later"}).status_code == 400
    )
    Scenario.objects.bulk_create([Scenario(name="later", k=4)])  # sends no signal
    assert len(recs(client, scenario="later")["items"]) == 4  # the miss was not kept
    assert ("named", "later") in scenarios._memo["values"]


def test_starting_and_stopping_an_experiment_counts_at_once(shop):
    client = APIClient()
    home = Scenario.objects.create(name="home", k=5)
    short = Scenario.objects.create(name="home-short", k=2)
    test = Experiment.objects.create(name="k", scenario=home)
    Variant.objects.create(experiment=test, name="short", share=1, configuration=short)
    assert len(recs(client, scenario="home")["items"]) == 5
    experiments.start(test)  # a queryset update: no signal, so start says so itself
    assert len(recs(client, scenario="home")["items"]) == 2
    experiments.stop(test)
    assert len(recs(client, scenario="home")["items"]) == 5


def test_with_the_cache_down_scenarios_are_read_every_time(shop, settings):
    from tests.test_production_safety import DEAD_REDIS

    Scenario.objects.create(name="home", k=3, is_default=True)
    settings.CACHES = DEAD_REDIS
    settings.RECOMMENDER_THROTTLE_FAIL_OPEN = True
    client = APIClient()
    assert len(recs(client)["items"]) == 3
    assert _scenario_reads(client) > 0
