"""sharedcache.read_ahead: the small keys every list reads (the scenarios', catalogue's and
co-occurrence table's versions, the popular and trending tables' stamps) come in one MGET
at a list endpoint's start, on the real Redis; what the process writes meanwhile is read
again, and an outage reads as it did without it."""

import pytest
import redis.client
from django.core.cache import cache
from rest_framework.test import APIClient

from recommender import sharedcache
from recommender.models import Item
from recommender.serving import memory_search, popularity, scenarios
from recommender.spaces import embedding

API = "/api/v1"


@pytest.fixture
def commands(monkeypatch):
    """Every Redis command this process sends, with its keys: (name, args)."""
    sent = []
    execute = redis.client.Redis.execute_command
    pipeline = redis.client.Pipeline.execute

    def counting(self, *args, **options):
        sent.append((args[0], args[1:]))
        return execute(self, *args, **options)

    def counting_pipeline(self, *args, **options):
        sent.append(("PIPELINE", tuple(stack[0][0] for stack in self.command_stack)))
        return pipeline(self, *args, **options)

    monkeypatch.setattr(redis.client.Redis, "execute_command", counting)
    monkeypatch.setattr(redis.client.Pipeline, "execute", counting_pipeline)
    return sent


def _keys() -> list[str]:
    return list(dict.fromkeys(key for keys in sharedcache._ahead_keys for key in keys()))


def test_every_list_version_and_stamp_is_registered():
    assert set(_keys()) == {
        scenarios._VERSION_KEY,
        memory_search.VERSION_KEY,
        memory_search.COOCCURRENCE_VERSION_KEY,
        popularity._stamp_key("popularity:30"),
        popularity._stamp_key("trending"),
    }


@pytest.mark.parametrize("throttled", [True, False], ids=["with-the-throttle", "no-throttle"])
def test_a_list_reads_its_versions_and_stamps_in_one_round_trip(
    space, make_items, commands, settings, throttled
):
    if not throttled:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {}}
    items = make_items(8)
    embedding.embed_items(space, [item.pk for item in items])
    api = APIClient()
    assert api.post(f"{API}/users", {"id": "u1"}, format="json").status_code == 201
    body = {"user": "u1", "item": items[0].external_id, "kind": "view"}
    assert api.post(f"{API}/behaviours", body, format="json").status_code == 201
    lists = []
    for _ in range(3):  # the first list writes the versions and the tables it found missing
        commands.clear()
        response = api.get(f"{API}/users/u1/recommendations", {"k": 4})
        assert response.status_code == 200, response.content
        lists.append([item["id"] for item in response.json()["items"]])
    assert lists[1] == lists[2] and len(lists[2]) == 4
    keys = {cache.make_and_validate_key(key) for key in _keys()}
    # One command holds every key: the throttle's script when it runs, else one MGET; no
    # command reads one of them on its own.
    holding = [(name, args) for name, args in commands if keys & set(args)]
    assert [name for name, _ in holding] == (["EVAL"] if throttled else ["MGET"])
    assert keys <= set(holding[0][1])
    assert ("EVAL" in [name for name, _ in commands]) == throttled
    # The same list without the read ahead, as the endpoint answered before it.
    kept = sharedcache._ahead_keys[:]
    sharedcache._ahead_keys.clear()
    try:
        response = api.get(f"{API}/users/u1/recommendations", {"k": 4})
    finally:
        sharedcache._ahead_keys.extend(kept)
    assert [item["id"] for item in response.json()["items"]] == lists[2]


def test_within_the_block_reads_answer_from_the_mget_and_writes_are_read_again(commands):
    sharedcache.read_ahead_keys(lambda: ["test:ahead:a", "test:ahead:b"])
    try:
        cache.set("test:ahead:a", "first", 60)
        cache.delete("test:ahead:b")
        with sharedcache.read_ahead():
            commands.clear()
            assert sharedcache.get("test:ahead:a") == "first"  # reads both, with one MGET
            assert [name for name, _ in commands] == ["MGET"]
            commands.clear()
            cache.set("test:ahead:a", "changed elsewhere", 60)  # another process's write
            assert sharedcache.get("test:ahead:a") == "first"
            assert sharedcache.get("test:ahead:b", "miss") == "miss"
            assert sharedcache.get_many(["test:ahead:a", "test:ahead:b"]) == {
                "test:ahead:a": "first"
            }
            assert [name for name, _ in commands if name in ("GET", "MGET")] == []
            # This process's own writes are read again.
            sharedcache.set("test:ahead:b", "mine", 60)
            assert sharedcache.get("test:ahead:b") == "mine"
            sharedcache.new_version("test:ahead:a")
            assert sharedcache.get("test:ahead:a") not in ("first", "changed elsewhere")
            # A key not read ahead is read, beside those that were.
            cache.set("test:ahead:c", 3, 60)
            assert sharedcache.get_many(["test:ahead:c", "test:ahead:b"]) == {
                "test:ahead:c": 3,
                "test:ahead:b": "mine",
            }
            with sharedcache.read_ahead():  # a nested block reads afresh and restores
                assert sharedcache.get("test:ahead:a") == cache.get("test:ahead:a")
            assert sharedcache.get("test:ahead:b") == "mine"
        # After the block every read goes to the cache again.
        cache.set("test:ahead:b", "later", 60)
        assert sharedcache.get("test:ahead:b") == "later"
    finally:
        sharedcache._ahead_keys.pop()
        cache.delete_many(["test:ahead:a", "test:ahead:b", "test:ahead:c"])


def test_an_outage_reads_each_key_on_its_own_as_before(monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(cache, "get_many", down)
    monkeypatch.setattr(cache, "get", down)
    with sharedcache.read_ahead():
        assert sharedcache.get(scenarios._VERSION_KEY, unavailable="down") == "down"
        assert sharedcache.get_many([memory_search.VERSION_KEY]) == {}


def test_a_list_is_served_while_the_cache_is_down(space, make_items, monkeypatch):
    items = make_items(6)
    embedding.embed_items(space, [item.pk for item in items])
    api = APIClient()
    assert api.post(f"{API}/users", {"id": "u1"}, format="json").status_code == 201

    def down(*args, **kwargs):
        raise ConnectionError("redis is down")

    for name in ("get", "get_many", "set", "set_many", "add"):
        monkeypatch.setattr(cache, name, down)
    response = api.get(f"{API}/users/u1/recommendations", {"k": 3})
    assert response.status_code == 200, response.content
    assert {item["id"] for item in response.json()["items"]} <= set(
        Item.objects.values_list("external_id", flat=True)
    )


def test_the_throttle_that_reads_ahead_still_counts(space, make_items, settings):
    items = make_items(4)
    embedding.embed_items(space, [item.pk for item in items])
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "recommendations": "2/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    cache.clear()
    api = APIClient()
    assert api.post(f"{API}/users", {"id": "u1"}, format="json").status_code == 201
    answers = [api.get(f"{API}/users/u1/recommendations", {"k": 2}) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert 0 < int(answers[2]["Retry-After"]) <= 60
