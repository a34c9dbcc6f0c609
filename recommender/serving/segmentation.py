"""Segmentations of item texts for reasons and blurbs, cached by a hash of the text.

Every explained list segments each listed item's text: jieba tokens to find the query
words an item shares (``explain.shared_keywords``), TF-IDF keywords for the blurb
(``explain._features``). Item texts rarely change, so both are cached in two layers,
keyed by a hash of the text, never the text, so an entry costs the same however long
the text is:

1. a per-process LRU (:data:`LOCAL_ENTRIES` entries), checked first, costs nothing;
2. the shared Django cache (Redis), so a fresh worker process does not segment the
   whole catalogue again. It fails open: when it errors, texts are segmented here and
   the shared cache is left alone for :data:`RETRY_SHARED_AFTER` seconds.

Callers bound the text before asking (:data:`DESCRIPTION_CHARS`, :data:`TEXT_CHARS`):
a megabyte description costs what its first 2,000 characters cost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.cache import cache

from encoders.textprep import LRUCache, dictionary_version, extract_keywords, segment, text_digest

__all__ = [
    "DESCRIPTION_CHARS",
    "MAX_TAGS",
    "TEXT_CHARS",
    "TOKENS",
    "item_keywords",
    "item_tokens",
    "keywords_kind",
    "local_keys",
    "prefetch",
    "shared_key",
]

logger = logging.getLogger(__name__)

# How much of an item's text reasons and blurbs read: the start of a description says
# what the item is; the rest (care instructions, legal text) adds cost, not keywords.
DESCRIPTION_CHARS = 2000
MAX_TAGS = 100
TEXT_CHARS = 8000
LOCAL_ENTRIES = 8192
SHARED_TIMEOUT = 7 * 24 * 3600
RETRY_SHARED_AFTER = 30.0
# Bumped when what is cached changes shape (so old entries are not read back).
_FORMAT = 1

_local = LRUCache(LOCAL_ENTRIES)
_shared_lock = threading.Lock()
_shared_retry_at = 0.0


def item_tokens(text: str) -> frozenset[str]:
    """The distinct words of ``text`` (``textprep.segment``), cached."""
    return _cached(TOKENS, text, lambda: frozenset(segment(text)))


def item_keywords(text: str, top_k: int) -> tuple[str, ...]:
    """The ``top_k`` TF-IDF keywords of ``text`` (``textprep.keywords``), cached."""
    return _cached(keywords_kind(top_k), text, lambda: extract_keywords(text, top_k))


# What ``prefetch`` is asked for: (kind, text), the kind of ``item_tokens`` or of
# ``item_keywords`` with its ``top_k``.
TOKENS = "tokens"


def keywords_kind(top_k: int) -> str:
    return f"keywords{top_k}"


def prefetch(wanted) -> None:
    """Bring the shared cache's segmentations of ``wanted`` ((kind, text) pairs) that this
    process does not hold into its cache, in one round trip. A list's items are mostly new
    to a process on a large catalogue: asked one by one, its blurbs read the shared cache
    about twice an item, ~8 % of a live list's time at 100,000 items (cProfile of the
    endpoint). What neither cache holds is segmented when first used, as before."""
    missing: dict[str, tuple[str, str]] = {}
    for kind, text in wanted:
        digest = text_digest(text)
        if _local.get((kind, digest)) is None:
            missing[_shared_key(kind, digest)] = (kind, digest)
    if not missing or not _shared_available():
        return
    try:
        found = cache.get_many(list(missing))
    except Exception:  # any failure of the cache: segment locally instead
        _shared_failed()
        return
    for key, value in found.items():
        _local.put(missing[key], value)


def shared_key(kind: str, text: str) -> str:
    """The shared-cache key of a segmentation of ``text`` (a hash, not the text)."""
    return _shared_key(kind, text_digest(text))


def _shared_key(kind: str, digest: str) -> str:
    # Another process may have loaded a user dictionary that segments differently.
    version = dictionary_version() or "-"
    return f"recommender:segmentation:{_FORMAT}:{version}:{kind}:{digest}"


def local_keys() -> list[tuple[str, str]]:
    """The keys of this process's cache: ``(kind, text hash)`` pairs."""
    return _local.keys()


def _cached(kind: str, text: str, compute: Callable[[], Any]) -> Any:
    digest = text_digest(text)
    found = _local.get((kind, digest))
    if found is not None:
        return found
    key = _shared_key(kind, digest)
    found = _shared_get(key)
    if found is None:
        found = compute()
        _shared_set(key, found)
    _local.put((kind, digest), found)
    return found


def _shared_available() -> bool:
    return time.monotonic() >= _shared_retry_at


def _shared_failed() -> None:
    global _shared_retry_at
    with _shared_lock:
        _shared_retry_at = time.monotonic() + RETRY_SHARED_AFTER
    logger.warning(
        "the shared cache failed; segmenting item texts locally for %d s",
        RETRY_SHARED_AFTER,
        exc_info=True,
    )


def _shared_get(key: str) -> Any:
    if not _shared_available():
        return None
    try:
        return cache.get(key)
    except Exception:  # any failure of the cache: segment locally instead
        _shared_failed()
        return None


def _shared_set(key: str, value: Any) -> None:
    if not _shared_available():
        return
    try:
        cache.set(key, value, SHARED_TIMEOUT)
    except Exception:  # any failure of the cache: the result is served all the same
        _shared_failed()
