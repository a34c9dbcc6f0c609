"""Every served list is logged: an id in the response, a row after the flush, nothing
lost or doubled when a drain dies half-way or Redis is down."""

import json

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from recommender.ingest import privacy
from recommender.models import EndUser, Item, ServedList
from recommender.serving import served_lists
from recommender.spaces import embedding
from recommender.tasks import flush_served_lists

API = "/api/v1"
DEAD_REDIS = {
    "default": {
        "BACKEND": "recsite.cache.ReusedClientRedisCache",
        "LOCATION": "unix:///nonexistent/recsite-test-redis.sock?db=1",
    }
}


@pytest.fixture
def shop(settings, hashing_space, make_items):
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    items = make_items(8)
    embedding.embed_items(hashing_space, [item.pk for item in items])
    EndUser.objects.create(external_id="alice")
    return items


def recs(**params):
    response = APIClient().get(f"{API}/users/alice/recommendations", {"k": 3, **params})
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db
def test_a_list_answer_carries_a_recommendation_id_and_its_row_appears_after_the_flush(shop):
    body = recs(device="mobile", page="home")
    rid = body["recommendation_id"]
    assert rid and not ServedList.objects.exists()  # written off the request path
    assert served_lists.drain() == 1
    row = ServedList.objects.get()
    assert row.id.hex == rid and row.user.external_id == "alice"
    assert row.endpoint == "recommendations" and row.context == {"device": "mobile", "page": "home"}
    served = [(entry["item"], entry["position"]) for entry in row.items]
    shown = [Item.objects.get(external_id=item["id"]).pk for item in body["items"]]
    assert served == [(pk, n) for n, pk in enumerate(shown, start=1)]
    assert all(entry["sources"] for entry in row.items)


@pytest.mark.django_db
def test_every_list_endpoint_is_logged(shop):
    client = APIClient()
    answers = [
        client.get(f"{API}/search", {"q": "item", "k": 2}).json(),
        client.get(f"{API}/items/{shop[0].external_id}/similar", {"k": 2}).json(),
        client.post(
            f"{API}/recommendations", {"positive": [shop[1].external_id]}, format="json"
        ).json(),
        recs(),
    ]
    assert served_lists.drain() == 4
    assert set(ServedList.objects.values_list("endpoint", flat=True)) == {
        "search", "similar", "session", "recommendations",
    }  # fmt: skip
    assert {row.id.hex for row in ServedList.objects.all()} == {
        a["recommendation_id"] for a in answers
    }


@pytest.mark.django_db
def test_a_drain_killed_half_way_loses_and_doubles_nothing(shop):
    ids = {recs()["recommendation_id"] for _ in range(5)}
    client = served_lists.sharedcache.redis_client(served_lists.QUEUE)
    # A drain that moved its batch aside and died before writing it:
    client.eval(served_lists._MOVE, 2, served_lists.QUEUE, served_lists.DRAINING, 3)
    assert served_lists.pending() == 5
    assert served_lists.drain() == 5
    # One that wrote its batch and died before deleting the side list: written again.
    rows = [json.dumps({"id": rid, "user": None, "endpoint": "x", "scenario": "", "variant": "",
                        "items": [], "context": {}, "served_at": "2026-11-30T10:00:00+00:00"})
            for rid in ids]  # fmt: skip
    client.rpush(served_lists.DRAINING, *rows)
    served_lists.drain()
    assert ServedList.objects.count() == 5 and {r.id.hex for r in ServedList.objects.all()} == ids


@pytest.mark.django_db
def test_without_redis_the_list_is_written_at_once(shop):
    with override_settings(CACHES=DEAD_REDIS):
        rid = recs()["recommendation_id"]
    assert ServedList.objects.filter(id=rid).exists()


@pytest.mark.django_db
def test_logging_can_be_switched_off(shop, settings):
    settings.RECOMMENDER_LOG_SERVED_LISTS = False
    assert recs()["recommendation_id"] is None
    assert served_lists.pending() == 0


@pytest.mark.django_db
def test_forgetting_a_user_removes_their_served_lists(shop):
    recs()
    served_lists.drain()
    user = EndUser.objects.get(external_id="alice")
    assert privacy.export_user(user)["served_lists"]
    privacy.forget_user(user)
    assert not ServedList.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_worker_flushes_every_queued_list(shop, celery_worker):
    ids = {recs()["recommendation_id"] for _ in range(12)}
    assert flush_served_lists.delay().get(timeout=60) == {"written": 12}
    assert {row.id.hex for row in ServedList.objects.all()} == ids


@pytest.mark.django_db
def test_the_admin_shows_served_lists_read_only(shop, admin_client):
    rid = recs()["recommendation_id"]
    served_lists.drain()
    page = admin_client.get("/admin/recommender/servedlist/")
    assert page.status_code == 200 and rid in page.content.decode().replace("-", "")
    assert admin_client.get("/admin/recommender/servedlist/add/").status_code == 403


@pytest.mark.django_db
def test_the_next_page_never_repeats_an_item_the_list_served(shop):
    first = recs(k=2, exclude_seen="false")
    second = recs(k=2, exclude_seen="false", recommendation_id=first["recommendation_id"])
    third = recs(k=2, exclude_seen="false", recommendation_id=second["recommendation_id"])
    pages = [[item["id"] for item in page["items"]] for page in (first, second, third)]
    assert all(len(page) == 2 for page in pages)
    assert len({item for page in pages for item in page}) == 6  # no item twice
    # With the queue flushed and Redis emptied, the written log still knows the chain.
    served_lists.drain()
    served_lists.sharedcache.redis_client(served_lists.QUEUE).flushdb()
    fourth = recs(k=2, exclude_seen="false", recommendation_id=third["recommendation_id"])
    assert not {item["id"] for item in fourth["items"]} & {i for page in pages for i in page}
    row = ServedList.objects.get(id=second["recommendation_id"])
    assert row.context["continues"] == first["recommendation_id"]


@pytest.mark.django_db
def test_a_next_page_of_an_unknown_list_is_a_400(shop):
    response = APIClient().get(
        f"{API}/users/alice/recommendations",
        {"recommendation_id": "0" * 32},
    )
    assert response.status_code == 400 and "recommendation_id" in response.json()
