"""Every served list leaves a trace: a ``recommendation_id`` in the response and, soon
after, a :class:`~recommender.models.ServedList` row (who, where, which items in which
order, with their scores and sources, and the request's context).

Writing a row per request would put a database round trip and a commit on the request
path. Instead the list is pushed onto a Redis list (one round trip, about 0.1 ms), and
``drain()`` (the ``recommender.flush_served_lists`` task, every few seconds) moves batches
into PostgreSQL. Redis keeps the queue on disk (append-only file), so a restart of a web
process, a worker or Redis itself loses nothing; a drain killed half-way leaves its batch
in a side list that the next drain writes first, and rows are keyed by the id, so writing
a batch twice stores it once. Without Redis (an outage, another cache backend) the row is
written at once instead.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from recommender import sharedcache
from recommender.conf import conf
from recommender.models import EndUser, ServedList

logger = logging.getLogger(__name__)

QUEUE = "recsite:served-lists"
# Per list, the items served in it and in the pages before it (the next page's exclusions).
CHAIN = "recsite:served-list-items:{}"
CHAIN_SECONDS = 86400
DRAINING = "recsite:served-lists:draining"
LOCK = "recsite:served-lists:lock"
BATCH = 2000

# Move up to ARGV[1] entries from the queue to the side list, in one step.
_MOVE = """
local batch = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #batch > 0 then
  redis.call('RPUSH', KEYS[2], unpack(batch))
  redis.call('LTRIM', KEYS[1], #batch, -1)
end
return #batch
"""


def enabled() -> bool:
    return bool(conf.LOG_SERVED_LISTS)


class UnknownList(LookupError):
    """A next page was asked of a list this site did not serve, or served too long ago."""

    def __init__(self, recommendation_id: str):
        super().__init__(
            f"no list {recommendation_id!r} to continue (unknown, or served over a day ago)"
        )


def served_in(recommendation_id: str) -> frozenset[int]:
    """The items a list and the pages before it served (for its next page)."""
    try:
        key = uuid.UUID(str(recommendation_id))
    except ValueError:
        raise UnknownList(recommendation_id) from None
    client = sharedcache.redis_client(QUEUE)
    if client is not None:
        try:
            members = client.smembers(CHAIN.format(key.hex))
            if members:
                return frozenset(int(member) for member in members)
        except Exception:  # noqa: BLE001 - Redis down: the written log still knows the list
            logger.warning("served-list chain unavailable; reading the log")
    row = ServedList.objects.filter(pk=key).first()
    if row is None:
        raise UnknownList(recommendation_id)
    before = (row.context or {}).get("continues")
    earlier = served_in(before) if before else frozenset()
    return earlier | {entry["item"] for entry in row.items}


@dataclass(frozen=True, slots=True)
class Pending:
    """A list about to be logged: its id and its log entry around its items, as JSON text
    (``head`` + the items + ``tail``), so that a kept list's items, rendered once, can be
    logged again without this process building them (``list_cache.serve``)."""

    recommendation_id: str
    head: str  # '{"id":…,"user":…,"endpoint":…,"scenario":…,"variant":…,"items":'
    tail: str  # ',"context":{…},"served_at":"…"}'
    earlier: frozenset[int]  # items the pages before it served (its chain holds them too)


def to_log(
    *,
    endpoint: str,
    user: EndUser | None = None,
    scenario: str = "",
    variant: str = "",
    context: dict | None = None,
    earlier: frozenset[int] = frozenset(),
) -> Pending | None:
    """The log entry of a list about to be served, less its items (None: logging off)."""
    if not enabled():
        return None
    recommendation_id = uuid.uuid4().hex
    head = {
        "id": recommendation_id,
        "user": user.pk if user is not None else None,
        "endpoint": endpoint,
        "scenario": scenario or "",
        "variant": variant or "",
    }
    tail = {"context": context or {}, "served_at": timezone.now().isoformat()}
    return Pending(
        recommendation_id,
        _compact(head)[:-1] + ',"items":',
        "," + _compact(tail)[1:],
        frozenset(earlier),
    )


def items_json(results: Sequence) -> str:
    """The ``items`` of a list's log entry, as JSON text."""
    return _compact(
        [
            {
                "item": result.item.pk,
                "position": position,
                "score": round(float(result.score), 6),
                "sources": list(result.sources),
            }
            for position, result in enumerate(results, start=1)
        ]
    )


def _compact(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def record(
    results: Sequence,
    *,
    endpoint: str,
    user: EndUser | None = None,
    scenario: str = "",
    variant: str = "",
    context: dict | None = None,
    earlier: frozenset[int] = frozenset(),
) -> str | None:
    """Log one served list; its ``recommendation_id`` (None when logging is off).
    ``earlier``: items the pages before it served (kept for its own next page)."""
    entry = to_log(
        endpoint=endpoint,
        user=user,
        scenario=scenario,
        variant=variant,
        context=context,
        earlier=earlier,
    )
    if entry is None:
        return None
    return record_pending(entry, items_json(results), [result.item.pk for result in results])


def record_pending(entry: Pending, items: str, shown: Sequence[int]) -> str:
    """Log ``entry`` with its ``items`` (``items_json``) and the items' ids; its id."""
    text = entry.head + items + entry.tail
    client = sharedcache.redis_client(QUEUE)
    if client is not None:
        try:
            chain = CHAIN.format(entry.recommendation_id)
            members = set(entry.earlier) | set(shown)
            with client.pipeline(transaction=False) as pipe:  # one round trip
                pipe.rpush(QUEUE, text)
                if members:
                    pipe.sadd(chain, *members)
                    pipe.expire(chain, CHAIN_SECONDS)
                pipe.execute()
            return entry.recommendation_id
        except Exception:  # noqa: BLE001 - Redis down: write it now rather than lose it
            logger.warning("served-list queue unavailable; writing the list directly")
    ServedList.objects.bulk_create([_row(json.loads(text))], ignore_conflicts=True)
    return entry.recommendation_id


def _row(entry: dict) -> ServedList:
    return ServedList(
        id=uuid.UUID(entry["id"]),
        user_id=entry["user"],
        endpoint=entry["endpoint"],
        scenario=entry["scenario"],
        variant=entry["variant"],
        items=entry["items"],
        context=entry["context"],
        served_at=datetime.fromisoformat(entry["served_at"]),
    )


def drain(batch: int = BATCH) -> int:
    """Write the queued lists to the database, a batch per statement; how many were
    written. One drain at a time (a Redis lock); safe to repeat after a crash."""
    client = sharedcache.redis_client(QUEUE)
    if client is None:
        return 0
    token = uuid.uuid4().hex
    if not client.set(LOCK, token, nx=True, ex=300):
        return 0  # another drain is running
    written = 0
    try:
        while True:
            pending = client.lrange(DRAINING, 0, -1)
            if not pending:
                if not client.eval(_MOVE, 2, QUEUE, DRAINING, batch):
                    break
                pending = client.lrange(DRAINING, 0, -1)
            rows = [_row(json.loads(raw)) for raw in pending]
            # Ignoring conflicts makes a batch written twice (a drain killed between the
            # INSERT and the DEL below) count once: rows are keyed by their id.
            ServedList.objects.bulk_create(rows, ignore_conflicts=True)
            client.delete(DRAINING)
            written += len(rows)
    finally:
        if client.get(LOCK) == token.encode():
            client.delete(LOCK)
    return written


def pending() -> int:
    """Lists queued and not yet written (0 without Redis)."""
    client = sharedcache.redis_client(QUEUE)
    if client is None:
        return 0
    return int(client.llen(QUEUE)) + int(client.llen(DRAINING))
