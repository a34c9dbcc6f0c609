"""The popular, trending and new sources: weighted engagement counts over the behaviour
log, shared by all processes through the cache.

A live request reads the tables a worker last computed (``refresh_live``, the task
``recommender.refresh_popularity``), and asks for a new computation once they are older
than ``RECOMMENDER_POPULARITY_REFRESH_SECONDS``; only the first request of a site (or one
after the cache lost them) computes them itself. They scan the behaviour log: 4–5 s at two
million events, which a request used to pay once a minute. A replay at a past time
(``as_of``: evaluation) computes the tables of its own minute, as before.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from datetime import datetime, timedelta

from django.db.models import Count
from django.utils import timezone

from recommender import behaviour, dbroute, sharedcache
from recommender.conf import conf
from recommender.models import (
    Behaviour,
    Item,
)
from recommender.serving.filters import Filters, item_where

logger = logging.getLogger(__name__)
REFRESH_TASK = "recommender.refresh_popularity"


def _weighted_counts(start: datetime | None, end: datetime) -> dict[int, float]:
    # Active items only: inactive ones can never be served, so they need no score.
    events = Behaviour.objects.filter(item__is_active=True, occurred_at__lt=end)
    if start is not None:
        events = events.filter(occurred_at__gte=start)
    totals: dict[int, float] = {}
    for kind, item_id, n in (
        events.filter(kind__in=behaviour.ENGAGED)
        .values("kind", "item_id")
        .annotate(n=Count("id"))
        .values_list("kind", "item_id", "n")
    ):
        totals[item_id] = totals.get(item_id, 0.0) + behaviour.popularity_weight(kind) * n
    return totals


class ScoreTable(dict):
    """Item id → score, with the items sorted best first once per process (``head``)."""

    _ranked: list[tuple[int, float]] | None = None

    def head(self) -> list[tuple[int, float]]:
        if self._ranked is None:
            self._ranked = sorted(self.items(), key=lambda kv: (-kv[1], kv[0]))
        return self._ranked

    def peak(self) -> float:
        """The highest score (0 for an empty table)."""
        head = self.head()
        return head[0][1] if head else 0.0


# name → (cache key, token, table): the last table each process read, reused while the
# shared cache still holds the same token for the same minute.
_memo: dict[str, tuple[str, str, ScoreTable]] = {}
# name → (the table's token, when this process last asked for its refresh; monotonic).
_asked: dict[str, tuple[str, float]] = {}


def _stamp_key(name: str) -> str:
    return f"recsite:{name}:live:stamp"


# Every list reads both live tables' stamps: read ahead with the other versions.
sharedcache.read_ahead_keys(
    lambda: [_stamp_key(f"popularity:{int(conf.POPULAR_WINDOW_DAYS)}"), _stamp_key("trending")]
)


def _cached_per_minute(name: str, end: datetime, compute) -> ScoreTable:
    """Aggregates over the behaviour log, shared by all processes for a minute (Redis).

    They scan many rows; recomputing them on every request would dominate serving, and
    so would unpickling a catalogue-sized table: each process keeps the last one it read
    and only checks a small token in Redis.
    """
    key = f"recsite:{name}:{end.replace(second=0, microsecond=0).isoformat()}"
    token = sharedcache.get(f"{key}:token", unavailable=sharedcache.UNAVAILABLE)
    memo = _memo.get(name)
    # The same minute and token; or, while the cache is down, this process's own table
    # for the minute (its token is UNAVAILABLE, which no token read later equals).
    if token is not None and memo is not None and memo[:2] == (key, token):
        return memo[2]
    usable = token is not None and token is not sharedcache.UNAVAILABLE
    table = sharedcache.get(key) if usable else None
    if table is None:
        table = compute()
        if token is not sharedcache.UNAVAILABLE:
            token = uuid.uuid4().hex
            if not sharedcache.set_many({key: table, f"{key}:token": token}, 60):
                token = sharedcache.UNAVAILABLE
    table = ScoreTable(table)
    _memo[name] = (key, token, table)
    return table


def _popularity_table(end: datetime, window_days: int) -> dict[int, float]:
    totals = _weighted_counts(end - timedelta(days=window_days), end)
    if len(totals) < 50:
        for item_id, value in _weighted_counts(None, end).items():
            totals.setdefault(item_id, 0.0)
            totals[item_id] += 0.1 * value
    return totals


def _trending_table(end: datetime) -> dict[int, float]:
    recent = _weighted_counts(end - timedelta(days=7), end)
    before = _weighted_counts(end - timedelta(days=35), end - timedelta(days=7))
    return {
        item_id: value / (before.get(item_id, 0.0) / 4.0 + 1.0)
        for item_id, value in recent.items()
        if value >= 2
    }


def _computation(name: str):
    """How to compute the live table ``name`` as of a given time."""
    if name == "trending":
        return _trending_table
    kind, _, days = name.partition(":")
    if kind != "popularity" or not days.isdigit():
        raise ValueError(f"no live table is called {name!r}")
    return lambda end: _popularity_table(end, int(days))


def refresh_seconds() -> float:
    """``RECOMMENDER_POPULARITY_REFRESH_SECONDS``: the age at which a live table is
    recomputed by a worker."""
    return float(conf.POPULARITY_REFRESH_SECONDS)


def _live_timeout() -> float:
    # A table outlives its refresh period ten times (at least 10 minutes), so that with no
    # worker running the tables are still recomputed, by a request, that often.
    return max(600.0, 10 * refresh_seconds())


def _store_live(name: str, compute) -> ScoreTable:
    """Compute the live table ``name`` now and share it; the table."""
    started = time.time()
    table = compute(timezone.now())
    token = uuid.uuid4().hex
    key = f"recsite:{name}:live"
    stored = sharedcache.set_many({key: table, _stamp_key(name): (token, started)}, _live_timeout())
    table = ScoreTable(table)
    _memo[name] = (key, token if stored else sharedcache.UNAVAILABLE, table)
    return table


def refresh_live(names: list[str] | None = None) -> dict[str, float]:
    """Recompute the live tables ``names`` (default: popularity over
    ``RECOMMENDER_POPULAR_WINDOW_DAYS`` and trending), the refresh task's body; name →
    seconds taken."""
    names = names or [f"popularity:{int(conf.POPULAR_WINDOW_DAYS)}", "trending"]
    took = {}
    for name in names:
        started = time.monotonic()
        _store_live(name, _computation(name))
        took[name] = round(time.monotonic() - started, 3)
    return took


def _ask_for_refresh(name: str) -> None:
    """Enqueue one refresh of ``name`` per period for the whole site (the first request
    to find it old takes a short lock); a broker problem never fails the request."""
    if not sharedcache.add(f"recsite:{name}:refreshing", 1, refresh_seconds()):
        return
    try:
        from celery import current_app

        current_app.send_task(REFRESH_TASK, kwargs={"names": [name]}, retry=False)
    except Exception:  # broker down: the table ages until a request recomputes it
        logger.warning("could not enqueue %s", REFRESH_TASK, exc_info=True)


def _live(name: str, compute) -> ScoreTable:
    """The live table ``name``: this process's copy while the shared stamp is unchanged,
    else the shared one; computed here only when the cache holds none. An old one is
    still served, and a worker asked to recompute it."""
    key = f"recsite:{name}:live"
    stamp = sharedcache.get(_stamp_key(name), unavailable=sharedcache.UNAVAILABLE)
    if stamp is sharedcache.UNAVAILABLE:  # the cache is down: per process, per minute
        return _cached_per_minute(name, timezone.now(), lambda: compute(timezone.now()))
    if stamp is None:
        return _store_live(name, compute)
    token, computed_at = stamp
    memo = _memo.get(name)
    if memo is not None and memo[:2] == (key, token):
        table = memo[2]
    else:
        shared = sharedcache.get(key)
        if shared is None:
            return _store_live(name, compute)
        table = ScoreTable(shared)
        _memo[name] = (key, token, table)
    if time.time() - computed_at > refresh_seconds():
        # Once per period per process for this table: while the worker has not replaced
        # it, the site-wide lock (a cache round trip) would only say "asked already".
        asked = _asked.get(name)
        now = time.monotonic()
        if asked is None or asked[0] != token or now - asked[1] >= refresh_seconds():
            _asked[name] = (token, now)
            _ask_for_refresh(name)
    return table


def popularity(as_of: datetime | None = None, window_days: int | None = None) -> ScoreTable:
    """Weighted engagement counts per item in the window before ``as_of`` (default: now,
    the live table).

    When the window holds nothing (an old dataset, a quiet shop) all time is used.
    """
    window_days = window_days or int(conf.POPULAR_WINDOW_DAYS)
    name = f"popularity:{window_days}"
    if as_of is None:
        return _live(name, _computation(name))
    return _cached_per_minute(name, as_of, lambda: _popularity_table(as_of, window_days))


def trending(as_of: datetime | None = None) -> ScoreTable:
    """Items whose last-7-days engagement beats their previous-28-days weekly rate."""
    if as_of is None:
        return _live("trending", _trending_table)
    return _cached_per_minute("trending", as_of, lambda: _trending_table(as_of))


def top_items(scores: dict[int, float], k: int, filters: Filters) -> dict[int, float]:
    """The ``k`` best-scored items that pass the filters.

    Popularity and trending tables hold active items only (as of their minute), so with no
    category or attribute filter the head is taken as it is; the caller's final item fetch
    applies ``filters`` again. With such a filter the head is checked in SQL.
    """
    return top_items_of([(scores, k)], filters)[0]


def top_items_of(tables: list[tuple[dict[int, float], int]], filters: Filters) -> list[dict]:
    """``top_items`` of each (scores, k) in ``tables``, with one statement for all of
    their heads when a filter narrows the items (a list checks the popular and the
    trending head together)."""
    narrowed = filters.narrows_items
    heads = []
    for scores, k in tables:
        ranked = scores.head() if isinstance(scores, ScoreTable) else ScoreTable(scores).head()
        heads.append(
            list(
                itertools.islice(
                    (
                        (item_id, score)
                        for item_id, score in ranked
                        if item_id not in filters.exclude_ids
                    ),
                    k * 4 if narrowed else k,
                )
            )
        )
    wanted = {item_id for head in heads for item_id, _ in head}
    if narrowed and wanted:
        # One precompiled statement (item_where): the ORM's query building cost more than
        # the query on filtered requests.
        table = Item._meta.db_table
        where, params = item_where(filters)
        with dbroute.read_connection().cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM {table} WHERE {table}.id = ANY(%s::bigint[]) AND {where}",
                [sorted(wanted), *params],
            )
            allowed = {row[0] for row in cursor.fetchall()}
        heads = [[(i, score) for i, score in head if i in allowed] for head in heads]
    return [dict(head[:k]) for head, (_, k) in zip(heads, tables, strict=True)]


def new_items(k: int, filters: Filters, as_of: datetime | None = None) -> list[int]:
    """The most recently added items (a cold-start source for brand-new catalogues)."""
    query = Item.objects.filter(filters.item_q()).exclude(pk__in=list(filters.exclude_ids))
    if as_of is not None:
        query = query.filter(created_at__lt=as_of)
    return list(query.order_by("-created_at").values_list("pk", flat=True)[:k])
