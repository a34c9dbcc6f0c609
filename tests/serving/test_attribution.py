"""Events that name their list, impressions, and attribution to scenario, position, source."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from recommender.models import Behaviour, EndUser, Scenario, UserProfile
from recommender.serving import attribution, served_lists
from recommender.spaces import embedding

pytestmark = pytest.mark.django_db
API = "/api/v1"


@pytest.fixture
def shop(settings, hashing_space, make_items):
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    items = make_items(10)
    embedding.embed_items(hashing_space, [item.pk for item in items])
    Scenario.objects.create(name="home")
    client = APIClient()
    event = {"user": "alice", "item": items[0].external_id, "kind": "like"}
    assert client.post(f"{API}/behaviours", event, format="json").status_code == 201
    return items


def served(client) -> dict:
    body = client.get(f"{API}/users/alice/recommendations", {"k": 4, "scenario": "home"}).json()
    served_lists.drain()
    return body


def post(client, **event) -> dict:
    response = client.post(f"{API}/behaviours", {"user": "alice", **event}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["behaviour"]


def test_an_event_naming_its_list_is_attributed_to_scenario_position_and_source(shop):
    client = APIClient()
    body = served(client)
    second = body["items"][1]
    stored = post(
        client, item=second["id"], kind="click",
        recommendation_id=body["recommendation_id"], position=2,
    )  # fmt: skip
    assert stored["recommendation_id"] == body["recommendation_id"] and stored["position"] == 2
    found = attribution.attribute(Behaviour.objects.get(kind="click"))
    assert found.recommendation_id == body["recommendation_id"] and found.via == "id"
    assert (found.scenario, found.endpoint, found.position) == ("home", "recommendations", 2)
    assert list(found.sources) == second["sources"]


def test_a_purchase_naming_no_list_is_attributed_within_the_window(shop):
    client = APIClient()
    body = served(client)
    first = body["items"][0]
    post(client, item=first["id"], kind="click", recommendation_id=body["recommendation_id"])
    post(client, item=first["id"], kind="purchase")
    purchase = Behaviour.objects.get(kind="purchase")
    found = attribution.attribute(purchase)
    assert found.via == "window" and found.recommendation_id == body["recommendation_id"]
    assert found.position == 1  # from the list, as the click gave none
    late = timezone.now() + timedelta(seconds=5)
    Behaviour.objects.filter(pk=purchase.pk).update(occurred_at=late + attribution.window())
    purchase.refresh_from_db()
    assert attribution.attribute(purchase) is None  # outside the window


def test_an_impression_neither_moves_the_profile_nor_hides_the_item(shop):
    client = APIClient()
    body = served(client)
    before = UserProfile.objects.get(user__external_id="alice")
    for entry in body["items"]:
        post(
            client, item=entry["id"], kind="impression", recommendation_id=body["recommendation_id"]
        )
    after = UserProfile.objects.get(user__external_id="alice")
    assert after.events == before.events and after.ref_time == before.ref_time
    again = client.get(f"{API}/users/alice/recommendations", {"k": 4}).json()
    assert {e["id"] for e in again["items"]} == {e["id"] for e in body["items"]}


def test_an_impression_must_name_its_list(shop):
    response = APIClient().post(
        f"{API}/behaviours",
        {"user": "alice", "item": shop[1].external_id, "kind": "impression"},
        format="json",
    )
    assert response.status_code == 400 and "recommendation_id" in response.json()
    response = APIClient().post(
        f"{API}/behaviours",
        {"user": "alice", "item": shop[1].external_id, "kind": "click", "position": 3},
        format="json",
    )
    assert response.status_code == 400 and "position" in response.json()


def test_a_batch_keeps_each_events_list_and_position(shop):
    client = APIClient()
    body = served(client)
    rid = body["recommendation_id"]
    events = [
        {"user": "bob", "item": entry["id"], "kind": "impression", "recommendation_id": rid,
         "position": n}
        for n, entry in enumerate(body["items"], start=1)
    ]  # fmt: skip
    assert (
        client.post(f"{API}/behaviours/batch", {"events": events}, format="json").status_code == 201
    )
    stored = Behaviour.objects.filter(user=EndUser.objects.get(external_id="bob"))
    assert sorted(stored.values_list("position", flat=True)) == [1, 2, 3, 4]
    assert {b.recommendation_id.hex for b in stored} == {rid}
    assert not UserProfile.objects.filter(user__external_id="bob").exists()  # no signal


def test_online_metrics_count_lists_impressions_clicks_and_purchases_per_scenario(shop):
    from recommender.apikeys import create_key
    from recommender.learning import online_metrics

    client = APIClient()
    for _ in range(3):
        body = served(client)
        rid = body["recommendation_id"]
        for n, entry in enumerate(body["items"], start=1):
            post(client, item=entry["id"], kind="impression", recommendation_id=rid, position=n)
        post(client, item=body["items"][0]["id"], kind="click", recommendation_id=rid, position=1)
    post(client, item=body["items"][0]["id"], kind="purchase", recommendation_id=rid)
    client.get(f"{API}/users/alice/recommendations", {"k": 2})  # no scenario
    served_lists.drain()
    rows = {row.scenario: row for row in online_metrics.scenario_days()}
    home = rows["home"]
    assert (home.lists, home.shown, home.impressions, home.clicks, home.purchases) == (
        3,
        12,
        12,
        3,
        1,
    )
    assert home.ctr.value == pytest.approx(3 / 12) and home.ctr.low < 0.25 < home.ctr.high
    assert home.conversion.value == pytest.approx(1 / 3)
    assert rows[""].lists == 1 and rows[""].ctr.value == 0.0
    admin = APIClient()
    admin.credentials(HTTP_AUTHORIZATION=f"Api-Key {create_key('m', 'admin')[1]}")
    answer = admin.get(f"{API}/metrics/scenarios", {"days": 1}).json()
    assert {row["scenario"] for row in answer} == {"home", ""}
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Api-Key {create_key('r', 'read')[1]}")
    assert reader.get(f"{API}/metrics/scenarios").status_code == 403


def test_wilson_interval_brackets_the_rate():
    from recommender.learning.online_metrics import wilson

    low, high = wilson(30, 100)
    assert 0.21 < low < 0.30 < high < 0.40
    assert wilson(0, 0) == (0.0, 0.0) and wilson(0, 10)[0] == 0.0
