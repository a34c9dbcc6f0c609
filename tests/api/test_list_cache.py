"""Finished lists kept in the shared cache (RECOMMENDER_LIST_CACHE_SECONDS): the same list
while nothing the user did or the site holds changed, a fresh one as soon as it did, and
every answer still logged as its own served list."""

import time

import pytest
from rest_framework.test import APIClient

from recommender.ingest.fields import Row
from recommender.models import EndUser, Item
from recommender.serving import list_cache, pipeline, served_lists
from recommender.spaces import embedding

API = "/api/v1"


@pytest.fixture
def shop(space, make_items, settings, monkeypatch):
    settings.RECOMMENDER_LIST_CACHE_SECONDS = 60
    items = make_items(12)
    embedding.embed_items(space, [item.pk for item in items])
    api = APIClient()
    assert api.post(f"{API}/users", {"id": "u1"}, format="json").status_code == 201
    assert event(api, items[0], "view").status_code == 201
    computed = []
    original = pipeline.recommend

    def counting(request):
        computed.append(request)
        return original(request)

    monkeypatch.setattr(pipeline, "recommend", counting)
    return api, items, computed


def event(api, item, kind, **fields):
    body = {"user": "u1", "item": item.external_id, "kind": kind, **fields}
    return api.post(f"{API}/behaviours", body, format="json")


def recs(api, **params):
    response = api.get(f"{API}/users/u1/recommendations", {"k": 5, **params})
    assert response.status_code == 200, response.content
    body = response.json()
    return [item["id"] for item in body["items"]], body["recommendation_id"]


def test_a_repeat_is_served_from_the_cache_and_logged_as_its_own_list(shop):
    api, items, computed = shop
    first, first_id = recs(api)
    again, again_id = recs(api)
    assert first and again == first and len(computed) == 1
    assert again_id != first_id
    pks = {Item.objects.get(external_id=i).pk for i in first}
    assert served_lists.served_in(first_id) == served_lists.served_in(again_id) == pks
    # Other parameters are another list.
    recs(api, k=4)
    recs(api, diversity=0.5)
    assert len(computed) == 3
    recs(api, k=4)
    assert len(computed) == 3


def test_an_event_of_the_user_shows_in_their_next_list(shop):
    api, items, computed = shop
    first, _ = recs(api)
    assert event(api, Item.objects.get(external_id=first[0]), "dislike").status_code == 201
    after, _ = recs(api)
    assert len(computed) == 2 and first[0] not in after


def test_an_impression_keeps_the_list(shop):
    api, items, computed = shop
    first, shown_in = recs(api)
    shown = Item.objects.get(external_id=first[0])
    response = event(api, shown, "impression", recommendation_id=shown_in, position=1)
    assert response.status_code == 201, response.content
    assert recs(api)[0] == first and len(computed) == 1


def test_an_item_change_or_the_users_attributes_make_a_fresh_list(shop):
    api, items, computed = shop
    first, _ = recs(api)
    hidden = Item.objects.get(external_id=first[0])
    hidden.is_active = False
    hidden.save()
    after, _ = recs(api)
    assert len(computed) == 2 and hidden.external_id not in after
    user = EndUser.objects.get(external_id="u1")
    user.attributes = {"segment": "vip"}
    user.save()
    recs(api)
    assert len(computed) == 3


def test_a_model_saved_or_items_imported_make_a_fresh_list(shop):
    from recommender.ingest.items import import_items

    api, items, computed = shop
    recs(api)
    list_cache.changed()  # what saving a ranker or a behaviour model calls
    recs(api)
    assert len(computed) == 2
    import_items([Row("test", {"external_id": "sku-new", "title": "新品 羽绒服"})])
    recs(api)
    assert len(computed) == 3


@pytest.mark.parametrize("redis", [True, False], ids=["redis", "other-cache"])
def test_a_list_is_kept_no_longer_than_its_items_windows(shop, monkeypatch, redis):
    """The clock passing an item's ``available_until`` changes no site token: a kept list
    expires by then, so the item is not shown outside its window."""
    from datetime import timedelta

    from django.utils import timezone

    from recommender import sharedcache

    api, items, computed = shop
    if not redis:
        monkeypatch.setattr(sharedcache, "redis_client", lambda key: None)
    first, _ = recs(api)
    # A window that ends soon: its save makes a fresh list, which is then kept.
    ends = timezone.now() + timedelta(seconds=1.5)
    closing = Item.objects.get(external_id=first[0])
    closing.available_until = ends
    closing.save()
    listed, _ = recs(api)
    assert first[0] in listed and len(computed) == 2
    assert recs(api)[0] == listed and len(computed) == 3 - 1  # kept while it is open
    while timezone.now() <= ends:
        time.sleep(0.1)
    after, _ = recs(api)
    assert len(computed) == 3 and first[0] not in after


@pytest.mark.parametrize("redis", [True, False], ids=["redis", "other-cache"])
def test_a_list_is_kept_no_longer_than_its_filters_verdicts(shop, monkeypatch, settings, redis):
    """A filter comparing with now() changes its verdict as the clock passes, which changes
    no site token: a kept list expires by the first listed item's moment."""
    from datetime import timedelta

    from django.utils import timezone

    from recommender import sharedcache

    api, items, computed = shop
    if not redis:
        monkeypatch.setattr(sharedcache, "redis_client", lambda key: None)
    settings.RECOMMENDER_ITEM_ATTRIBUTES = {"sale_ends": "timestamp"}
    ends = timezone.now() + timedelta(seconds=1.5)
    for item in items:
        later = item is not items[1]
        item.attributes = {"sale_ends": (ends + timedelta(days=1 if later else 0)).isoformat()}
        item.save()
    on_sale = {"filter": "sale_ends > now()", "k": 11}  # every item the user did not see
    listed, _ = recs(api, **on_sale)
    assert items[1].external_id in listed and len(computed) == 1
    assert recs(api, **on_sale)[0] == listed and len(computed) == 1  # kept meanwhile
    # Without the rule, or with a rule the clock does not move, a list keeps its full time.
    recs(api)
    recs(api, filter="sale_ends > '2020-01-01'")
    while timezone.now() <= ends:
        time.sleep(0.1)
    after, _ = recs(api, **on_sale)
    assert len(computed) == 4 and items[1].external_id not in after
    recs(api)
    recs(api, filter="sale_ends > '2020-01-01'")
    assert len(computed) == 4


def test_a_list_whose_filter_moments_cannot_be_told_is_not_kept(shop, settings):
    api, items, computed = shop
    settings.RECOMMENDER_ITEM_ATTRIBUTES = {"weeks": "number"}
    rule = "now() - days(7 * weeks) < created_at"
    recs(api, filter=rule)
    recs(api, filter=rule)
    assert len(computed) == 2


def test_off_by_default_every_request_runs_the_pipeline(shop, settings):
    api, items, computed = shop
    settings.RECOMMENDER_LIST_CACHE_SECONDS = 0
    recs(api)
    recs(api)
    assert len(computed) == 2


def test_a_repeat_answers_what_the_fresh_list_did_from_kept_plain_data(shop, settings):
    api, items, computed = shop
    item = items[3]
    item.translations = {"en": {"title": "Down jacket 3"}}
    item.attributes = {"price": 120, "cost": 80}
    item.save()
    settings.RECOMMENDER_PUBLIC_ATTRIBUTES = ["price"]

    def body():
        response = api.get(f"{API}/users/u1/recommendations", {"k": 12, "lang": "en"})
        assert response.status_code == 200, response.content
        data = response.json()
        data.pop("recommendation_id")
        return data

    fresh = body()
    assert {"id": "sku-3", "title": "Down jacket 3"}.items() <= next(
        i for i in fresh["items"] if i["id"] == "sku-3"
    ).items()
    assert body() == fresh and len(computed) == 1
    # Which attributes a list shows is decided when it is served, not when it was kept.
    settings.RECOMMENDER_PUBLIC_ATTRIBUTES = []
    again = body()
    assert len(computed) == 1
    assert all(shown["attributes"] == {} for shown in again["items"])
    # What is kept is plain data: no item rows, no ranking features.
    kept_keys = [key for key in cache_keys() if key.startswith(list_cache.PREFIX)]
    assert len(kept_keys) == 1
    kept, _ = list_cache.lookup(kept_keys[0])
    assert kept and all(isinstance(r.item, list_cache.ShownItem) for r in kept)
    assert all(r.features == {} for r in kept)


def cache_keys() -> list[str]:
    from django.core.cache import cache

    client = cache._cache.get_client(write=False)
    prefix = cache.make_key("")
    return [key.decode()[len(prefix) :] for key in client.keys(prefix + "*")]


def test_a_kept_answer_reads_the_user_and_their_profile_row_in_one_statement(shop):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    api, items, computed = shop
    recs(api)
    with CaptureQueriesContext(connection) as captured:
        recs(api)
    assert len(computed) == 1
    profile_reads = [q["sql"] for q in captured if "recommender_userprofile" in q["sql"]]
    assert len(profile_reads) == 1, profile_reads
    assert "recommender_enduser" in profile_reads[0]


def test_the_key_is_the_same_whether_the_profile_row_came_with_the_user_or_alone(shop, space):
    """The endpoint reads the user and their profile row in binary, in one statement; a
    worker computing a list ahead reads the row alone, in text. Both must name one key."""
    from recommender.api import views

    with_row = views._user_named("u1", profile_space=space.pk)
    alone = EndUser.objects.get(external_id="u1")
    assert (with_row.pk, with_row.attributes, with_row.created_at) == (
        alone.pk,
        alone.attributes,
        alone.created_at,
    )
    assert with_row._list_profile_row[1] is not None  # read with the user
    request = pipeline.RecommendationRequest(user=with_row, k=5)
    keyed = list_cache.key(request, scenario="", variant="")
    assert keyed == list_cache.key(
        pipeline.RecommendationRequest(user=alone, k=5), scenario="", variant=""
    )
    assert views._user_named("nobody", profile_space=space.pk) is None


def _raw(api, **params):
    response = api.get(f"{API}/users/u1/recommendations", {"k": 6, **params})
    assert response.status_code == 200, response.content
    return response


def _without_id(response) -> tuple[bytes, str]:
    """The response's bytes with its recommendation_id taken out, and the id."""
    rid = response.json()["recommendation_id"]
    return response.content.replace(rid.encode(), b"<id>"), rid


def test_a_repeat_sends_the_bytes_the_fresh_list_sent_and_logs_the_same_items(shop, settings):
    """A kept list holds its items rendered; its answer must be what DRF's renderer made of
    the fresh list, byte for byte, with text that JSON escapes or keeps as it is."""
    from recommender.models import ServedList

    api, items, computed = shop
    settings.RECOMMENDER_PUBLIC_ATTRIBUTES = ["price", "note"]
    for n, item in enumerate(items):
        item.title = f"羽绒服 “款{n}” \\ \u2028 line\tend é"
        item.attributes = {"price": 99.5 + n, "note": 'say "hi"\n', "cost": 1}
        item.save()
    fresh, fresh_id = _without_id(_raw(api, lang="zh"))
    assert b"\\u2028" in fresh and "“款".encode() in fresh  # escaped, kept as UTF-8
    again, again_id = _without_id(_raw(api, lang="zh"))
    assert len(computed) == 1 and again == fresh and again_id != fresh_id
    assert served_lists.drain() >= 2
    logged = {row.pk.hex: row for row in ServedList.objects.all()}
    first, second = logged[fresh_id], logged[again_id]
    assert second.items == first.items and len(first.items) == 6
    assert (second.user_id, second.endpoint, second.context) == (
        first.user_id,
        first.endpoint,
        first.context,
    )
    assert served_lists.served_in(again_id) == served_lists.served_in(fresh_id)


def test_a_repeat_is_checked_logged_and_read_in_one_redis_command(shop):
    import redis.client

    api, items, computed = shop
    _raw(api)
    sent = []
    execute = redis.client.Redis.execute_command
    pipeline = redis.client.Pipeline.execute

    def counting(self, *args, **options):
        sent.append(args[0])
        return execute(self, *args, **options)

    def counting_pipeline(self, *args, **options):
        sent.append("PIPELINE")
        return pipeline(self, *args, **options)

    redis.client.Redis.execute_command = counting
    redis.client.Pipeline.execute = counting_pipeline
    try:
        _raw(api)
    finally:
        redis.client.Redis.execute_command = execute
        redis.client.Pipeline.execute = pipeline
    assert len(computed) == 1
    # The throttle (with the read ahead) and the kept list with its log: nothing else.
    assert sent == ["EVAL", "EVAL"], sent


def test_a_caller_asking_for_indented_json_gets_the_same_list_built_again(shop):
    api, items, computed = shop
    plain = _raw(api).json()
    indented = api.get(
        f"{API}/users/u1/recommendations",
        {"k": 6},
        HTTP_ACCEPT="application/json; indent=2",
    )
    assert indented.status_code == 200 and len(computed) == 1
    assert b'\n  "user": "u1"' in indented.content
    body = indented.json()
    assert body.pop("recommendation_id") != plain.pop("recommendation_id")
    assert body == plain


def test_a_cache_that_is_not_redis_keeps_and_logs_lists_too(shop, monkeypatch):
    """Without Redis scripts (another cache backend), a kept list is checked and logged in
    two steps; the log is then written to the database at once."""
    from recommender import sharedcache
    from recommender.models import ServedList

    api, items, computed = shop
    monkeypatch.setattr(sharedcache, "redis_client", lambda key: None)
    fresh, fresh_id = _without_id(_raw(api))
    again, again_id = _without_id(_raw(api))
    assert len(computed) == 1 and again == fresh
    rows = {row.pk.hex: row.items for row in ServedList.objects.all()}
    assert rows[again_id] == rows[fresh_id] and len(rows[again_id]) == 6
    list_cache.changed()
    _raw(api)
    assert len(computed) == 2


def test_a_failing_cache_serves_a_fresh_list_and_logs_it(shop, monkeypatch):
    import redis.client

    from recommender.models import ServedList

    api, items, computed = shop
    _raw(api)

    def down(self, *args, **kwargs):
        raise redis.exceptions.ConnectionError("down")

    monkeypatch.setattr(redis.client.Redis, "eval", down)
    monkeypatch.setattr(redis.client.Redis, "evalsha", down)
    response = _raw(api)
    assert len(computed) == 2
    rid = response.json()["recommendation_id"]
    monkeypatch.undo()
    served_lists.drain()
    assert ServedList.objects.filter(pk=rid).exists()
