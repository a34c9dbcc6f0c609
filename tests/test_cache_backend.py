"""recsite.cache: Django's Redis cache with one client per pool, on the real Redis."""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.cache import caches

from recsite.cache import ReusedClientRedisCache


def _cache() -> ReusedClientRedisCache:
    params = dict(settings.CACHES["default"])
    assert params["BACKEND"] == "recsite.cache.ReusedClientRedisCache"
    return ReusedClientRedisCache(params["LOCATION"], params)


def test_the_default_cache_is_the_reused_client_backend():
    assert isinstance(caches["default"], ReusedClientRedisCache)


def test_one_client_serves_every_call_and_values_round_trip():
    cache = _cache()
    first = cache._cache.get_client("a")
    assert cache._cache.get_client("b", write=True) is first
    cache.set("recsite-cache-test", {"n": 1}, 30)
    assert cache.get("recsite-cache-test") == {"n": 1}
    assert cache.get_many(["recsite-cache-test", "recsite-cache-missing"]) == {
        "recsite-cache-test": {"n": 1}
    }
    cache.delete("recsite-cache-counter")
    assert cache.add("recsite-cache-counter", 1, 30)
    assert cache.incr("recsite-cache-counter") == 2
    cache.delete_many(["recsite-cache-test", "recsite-cache-counter"])
    assert cache.get("recsite-cache-test") is None
    assert cache._cache.get_client() is first


def test_threads_share_the_client_safely():
    cache = _cache()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                cache.set(f"recsite-cache-t{n}-{i}", (n, i), 30)
                assert cache.get(f"recsite-cache-t{n}-{i}") == (n, i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    cache.delete_many([f"recsite-cache-t{n}-{i}" for n in range(8) for i in range(50)])
