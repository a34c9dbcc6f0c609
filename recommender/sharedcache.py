"""The shared cache (Redis), read and written so that an outage costs speed, not answers.

Everything the toolkit keeps there (the active space's version token, per-minute
popularity tables, text vectors, segmentations) can be recomputed from the database, so
a cache that fails is treated as a cache that misses: these functions log the error (at
most once a minute per process) and return what a miss returns.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)
_last_warning = 0.0


def _failed(operation: str) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= 60:
        _last_warning = now
        logger.warning(
            "shared cache unavailable (%s); using the database", operation, exc_info=True
        )


# What ``get(..., unavailable=UNAVAILABLE)`` returns when the cache failed, for callers
# that must tell an outage from a miss.
UNAVAILABLE = object()


def redis_client(key: str):
    """The Redis client behind the default cache for ``key`` (for list and script
    commands the cache API lacks), or None when the cache is not Redis."""
    backend = getattr(cache, "_cache", None)
    get_client = getattr(backend, "get_client", None)
    return get_client(key, write=True) if get_client is not None else None


def get(key: str, default: Any = None, *, unavailable: Any = None) -> Any:
    """``cache.get``; on a cache error, ``unavailable`` (by default None, a miss)."""
    try:
        return cache.get(key, default)
    except Exception:  # any backend error (redis.ConnectionError, timeouts)
        _failed("get")
        return default if unavailable is None else unavailable


def get_many(keys: list[str]) -> dict[str, Any]:
    try:
        return cache.get_many(keys)
    except Exception:
        _failed("get_many")
        return {}


def set(key: str, value: Any, timeout: float | None) -> bool:  # noqa: A001 - cache's own name
    try:
        cache.set(key, value, timeout)
        return True
    except Exception:
        _failed("set")
        return False


def set_many(values: dict[str, Any], timeout: float | None) -> bool:
    try:
        cache.set_many(values, timeout)
        return True
    except Exception:
        _failed("set_many")
        return False


def add(key: str, value: Any, timeout: float | None) -> bool:
    try:
        return bool(cache.add(key, value, timeout))
    except Exception:
        _failed("add")
        return False


def touch(key: str, timeout: float | None) -> bool:
    """``cache.touch``: keep ``key`` for ``timeout`` more seconds (False: no such key)."""
    try:
        return bool(cache.touch(key, timeout))
    except Exception:
        _failed("touch")
        return False


def delete(key: str) -> bool:
    try:
        return bool(cache.delete(key))
    except Exception:
        _failed("delete")
        return False


def new_version(key: str) -> None:
    """Give ``key`` a new random version (no expiry): now, and once more after the
    transaction commits, as another process may read the old rows in between and keep
    them under the version set now."""
    set(key, uuid.uuid4().hex, None)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: set(key, uuid.uuid4().hex, None))
