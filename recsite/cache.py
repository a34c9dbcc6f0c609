"""Django's Redis cache, keeping one ``redis.Redis`` client per connection pool.

Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis`` for every cache call.
With redis-py 8 that object copies about 170 response callbacks on creation: measured on
the demo shop (benchmarks/load.py's mix, cProfile), 5 clients per request and 0.1–0.3 ms
each. A client is only a handle on its pool and is safe to share between threads (redis-py
documents ``Redis`` objects as thread-safe), so each pool's client is made once. Written
here because Django has no option for it.
"""

from __future__ import annotations

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class ReusedClientCacheClient(RedisCacheClient):
    """``RedisCacheClient`` whose ``get_client`` returns one client per pool."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class ReusedClientRedisCache(RedisCache):
    """``django.core.cache.backends.redis.RedisCache`` with ``ReusedClientCacheClient``."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusedClientCacheClient
