"""The shared cache (Redis), read and written so that an outage costs speed, not answers.

Everything the toolkit keeps there (the active space's version token, per-minute
popularity tables, text vectors, segmentations) can be recomputed from the database, so
a cache that fails is treated as a cache that misses: these functions log the error (at
most once a minute per process) and return what a miss returns.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)
_last_warning = 0.0


def failed(operation: str) -> None:
    """Log a cache error (at most once a minute per process)."""
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


def stored_key(key: str) -> str:
    """``key`` as the cache stores it in Redis (its prefix and version), for a script or a
    command of the client's own (``redis_client``)."""
    return cache.make_key(key)


def encode(value: Any) -> Any:
    """``value`` as the cache stores it (``decode`` reads it back)."""
    return cache._cache._serializer.dumps(value)


def decode(raw: Any) -> Any:
    """A value as the cache stored it (``encode``), read back."""
    return cache._cache._serializer.loads(raw)


# --- Read ahead ----------------------------------------------------------------------------
# A list reads several small keys that say whether this process's copies are current (the
# scenarios' version, the catalogue's and the co-occurrence table's, the popular and
# trending tables' stamps): one round trip each, six in all with the throttle and the
# served list. Modules name those keys here (``read_ahead_keys``); within a list endpoint's
# block (``read_ahead``) they are all read at once, and ``get`` / ``get_many`` of them
# answer from that read for the rest of the request, in that thread. They are read with
# the request's throttle command when it runs first (``ahead_keys`` / ``took_ahead``: no
# round trip of their own), else with one MGET at the first read of the cache. A key this
# process writes meanwhile is read from the cache again.

_MISS = object()
_ahead = threading.local()
_ahead_keys: list[Callable[[], Iterable[str]]] = []


class _Ahead:
    """One block's read ahead: its keys, and what was read for them (``values``; None
    before the read, or after a read that failed)."""

    __slots__ = ("keys", "read", "values")

    def __init__(self, keys: list[str]):
        self.keys = keys
        self.read = False
        self.values: dict[str, Any] | None = None


def read_ahead_keys(keys: Callable[[], Iterable[str]]) -> None:
    """Register ``keys()``: keys every list reads, to be read ahead together."""
    _ahead_keys.append(keys)


@contextmanager
def read_ahead() -> Iterator[None]:
    """Within the block (one request, in this thread), the registered keys answer from one
    read: the throttle's, else an MGET at the block's first read of the cache. A failed
    read reads nothing ahead: each key is then read, and fails, on its own, as without
    this block."""
    previous = getattr(_ahead, "state", None)
    _ahead.state = _Ahead(list(dict.fromkeys(key for keys in _ahead_keys for key in keys())))
    try:
        yield
    finally:
        _ahead.state = previous


def ahead_keys() -> list[str] | None:
    """The keys this thread's read ahead has still to read (None: none), for a command
    about to go to the cache anyway to read them along (``took_ahead``)."""
    state = getattr(_ahead, "state", None)
    return state.keys if state is not None and not state.read else None


def took_ahead(keys: list[str], raw: list) -> None:
    """A command read ``keys`` (``ahead_keys``) along: ``raw``, their values as the cache
    holds them (None for a miss), in their order."""
    state = getattr(_ahead, "state", None)
    if state is None or state.read or state.keys is not keys:
        return
    loads = cache._cache._serializer.loads
    state.read = True
    state.values = {
        key: _MISS if value is None else loads(value) for key, value in zip(keys, raw, strict=True)
    }


def _read_ahead(key: str) -> Any:
    """What the read ahead holds for ``key`` (``_MISS``: a miss), or None if nothing; the
    block's first read of the cache reads its keys."""
    state = getattr(_ahead, "state", None)
    if state is None:
        return None
    if not state.read:
        state.read = True
        try:
            found = cache.get_many(state.keys)
        except Exception:
            failed("get_many")
        else:
            state.values = {key: found.get(key, _MISS) for key in state.keys}
    return None if state.values is None else state.values.get(key)


def _forget_ahead(*keys: str) -> None:
    state = getattr(_ahead, "state", None)
    if state is not None and state.values:
        for key in keys:
            state.values.pop(key, None)


def get(key: str, default: Any = None, *, unavailable: Any = None) -> Any:
    """``cache.get``; on a cache error, ``unavailable`` (by default None, a miss)."""
    ahead = _read_ahead(key)
    if ahead is not None:
        return default if ahead is _MISS else ahead
    try:
        return cache.get(key, default)
    except Exception:  # any backend error (redis.ConnectionError, timeouts)
        failed("get")
        return default if unavailable is None else unavailable


def get_many(keys: list[str]) -> dict[str, Any]:
    found, rest = {}, []
    for key in keys:
        ahead = _read_ahead(key)
        if ahead is None:
            rest.append(key)
        elif ahead is not _MISS:
            found[key] = ahead
    if not rest:
        return found
    try:
        return {**found, **cache.get_many(rest)}
    except Exception:
        failed("get_many")
        return found


def set(key: str, value: Any, timeout: float | None) -> bool:  # noqa: A001 - cache's own name
    _forget_ahead(key)
    try:
        cache.set(key, value, timeout)
        return True
    except Exception:
        failed("set")
        return False


def set_many(values: dict[str, Any], timeout: float | None) -> bool:
    _forget_ahead(*values)
    try:
        cache.set_many(values, timeout)
        return True
    except Exception:
        failed("set_many")
        return False


def add(key: str, value: Any, timeout: float | None) -> bool:
    _forget_ahead(key)
    try:
        return bool(cache.add(key, value, timeout))
    except Exception:
        failed("add")
        return False


def touch(key: str, timeout: float | None) -> bool:
    """``cache.touch``: keep ``key`` for ``timeout`` more seconds (False: no such key)."""
    try:
        return bool(cache.touch(key, timeout))
    except Exception:
        failed("touch")
        return False


def delete(key: str) -> bool:
    _forget_ahead(key)
    try:
        return bool(cache.delete(key))
    except Exception:
        failed("delete")
        return False


def new_version(key: str) -> None:
    """Give ``key`` a new random version (no expiry): now, and once more after the
    transaction commits, as another process may read the old rows in between and keep
    them under the version set now."""
    set(key, uuid.uuid4().hex, None)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: set(key, uuid.uuid4().hex, None))
