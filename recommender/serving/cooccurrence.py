"""The co-occurrence source: items engaged with close together in users' histories,
refreshed into a table, and the candidates they give for a user's recent items."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from recommender import behaviour, dbroute
from recommender.conf import conf
from recommender.models import (
    Behaviour,
    CooccurrenceRefresh,
    Item,
    ItemCooccurrence,
)
from recommender.serving.filters import Filters, item_where


def cooccurrence_window() -> int:
    return int(conf.COOCCURRENCE_WINDOW)


# The engaged events that count, as both refreshes select them (``%(...)s`` parameters
# of ``_params``); ``e`` is the behaviour table.
_COUNTED = """
    e.item_id IS NOT NULL AND e.kind = ANY(%(kinds)s)
    AND (%(as_of)s::timestamptz IS NULL OR e.occurred_at < %(as_of)s::timestamptz)
    AND (%(since)s::timestamptz IS NULL OR e.occurred_at >= %(since)s::timestamptz)
    AND (e.kind <> 'rating' OR e.value IS NULL OR e.value >= %(min_rating)s)
    AND NOT (e.id = ANY(%(exclude)s))
"""

# Pairs, scores and the top ``per_item`` of each item, from ``ev`` (numbered events) and
# ``freq`` (distinct users per item), for the source items ``ev`` pairs allow.
_RANKED = """
    pairs AS (
        SELECT a.item_id AS item, b.item_id AS other, count(DISTINCT a.user_id) AS n
        FROM ev a JOIN ev b
          ON a.user_id = b.user_id AND a.item_id <> b.item_id
         AND b.rn BETWEEN a.rn - %(window)s AND a.rn + %(window)s
        {where_source}
        GROUP BY 1, 2
    ),
    scored AS (
        SELECT p.item, p.other, p.n,
               p.n / sqrt(fa.n * fb.n) * p.n / (p.n + 2.0) AS score
        FROM pairs p JOIN freq fa ON fa.item_id = p.item JOIN freq fb ON fb.item_id = p.other
    ),
    ranked AS (
        SELECT *, row_number() OVER (PARTITION BY item ORDER BY score DESC, other) AS r
        FROM scored
    )
"""


def _params(as_of, per_item, exclude_events) -> dict:
    return {
        "kinds": list(behaviour.ENGAGED),
        "as_of": as_of,
        "since": behaviour.retention_start(as_of),  # older events no longer count
        "window": cooccurrence_window(),
        "per_item": per_item,
        "exclude": list(exclude_events),
        "min_rating": behaviour.positive_rating(),
    }


# How old an event must be to count as surely committed (see ``_watermark``).
WATERMARK_LAG = "5 minutes"


# An incremental refresh that would recompute more than this share of the active items
# runs in full instead (measured, docs/scaling.md: at a third of the items it cost 0.92 of
# a full refresh, and it writes nearly as much).
INCREMENTAL_MAX_SHARE = 0.2


def _newest(cursor) -> tuple[int | None, int | None]:
    """The newest event id now, and how many events have ids up to it."""
    table = Behaviour._meta.db_table
    cursor.execute(f"SELECT max(id) FROM {table}")
    newest = cursor.fetchone()[0]
    return newest, _count_up_to(cursor, newest)


def _count_up_to(cursor, event_id: int | None) -> int | None:
    if event_id is None:
        return None
    cursor.execute(f"SELECT count(*) FROM {Behaviour._meta.db_table} WHERE id <= %s", [event_id])
    return cursor.fetchone()[0]


def _watermark(cursor) -> int | None:
    """The newest event id that every earlier-committed event is known to be below: ids
    are taken at insert and committed later, so events created in the last minutes may
    still be missing below it; they are taken again by the next incremental refresh,
    which recomputes rows rather than adding to them, so taking one twice is harmless."""
    cursor.execute(
        f"SELECT max(id) FROM {Behaviour._meta.db_table} "
        "WHERE created_at < statement_timestamp() - %s::interval",
        [WATERMARK_LAG],
    )
    return cursor.fetchone()[0]


def refresh_cooccurrence(
    *,
    as_of: datetime | None = None,
    per_item: int = 50,
    exclude_events: Sequence[int] = (),
) -> int:
    """Recompute the item-to-item table from engaged events (before ``as_of``, within the
    retention, and without the behaviours in ``exclude_events``: offline evaluation's
    held-out events). Rows written.

    Two items co-occur when one user engaged with both within ``window`` consecutive
    events. Score: shrunk cosine, n / sqrt(n_a n_b) * n / (n + 2). Raw SQL because the
    windowed self-join and top-N per item are one statement here and many in the ORM.
    """
    started = time.monotonic()
    table = ItemCooccurrence._meta.db_table
    replay = as_of is not None or bool(exclude_events)
    sql = f"""
        WITH ev AS (
            SELECT e.user_id, e.item_id,
                   row_number() OVER (PARTITION BY e.user_id ORDER BY e.occurred_at, e.id) AS rn
            FROM {Behaviour._meta.db_table} e WHERE {_COUNTED}
        ),
        freq AS (SELECT item_id, count(DISTINCT user_id) AS n FROM ev GROUP BY item_id),
        {_RANKED.format(where_source="")}
        INSERT INTO {table} (item_id, other_id, score, count)
        SELECT item, other, score, n FROM ranked WHERE r <= %(per_item)s
    """
    with transaction.atomic(), connection.cursor() as cursor:
        watermark = None if replay else _watermark(cursor)
        newest, count = (None, None) if replay else _newest(cursor)
        cursor.execute(f"DELETE FROM {table}")
        cursor.execute(sql, _params(as_of, per_item, exclude_events))
        written = cursor.rowcount
        # Fresh statistics, or the planner scans the whole table for every lookup.
        cursor.execute(f"ANALYZE {table}")
        _written()
        CooccurrenceRefresh.objects.create(
            kind=CooccurrenceRefresh.Kind.REPLAY if replay else CooccurrenceRefresh.Kind.FULL,
            last_event_id=watermark,
            newest_event_id=newest,
            events_up_to=count,
            items=Item.objects.count(),
            rows=written,
            seconds=time.monotonic() - started,
        )
        return written


def _written() -> None:
    """The table changed: processes that keep it in memory read it again
    (``memory_search.cooccurrence_changed``; after the commit too)."""
    from recommender.serving import memory_search  # it reads this module's table

    memory_search.cooccurrence_changed()


def affected_items(after: int) -> list[int]:
    """Items whose co-occurrence rows events with ids above ``after`` change: those
    engaged within ``window`` events of one of them in the same user's history (a
    back-dated event shifts the positions after it, which moves only pairs around it)."""
    events = Behaviour._meta.db_table
    sql = f"""
        WITH new_users AS (
            SELECT DISTINCT e.user_id FROM {events} e WHERE e.id > %(after)s AND {_COUNTED}
        ),
        ev AS (
            SELECT e.user_id, e.item_id, e.id,
                   row_number() OVER (PARTITION BY e.user_id ORDER BY e.occurred_at, e.id) AS rn
            FROM {events} e WHERE e.user_id IN (SELECT user_id FROM new_users) AND {_COUNTED}
        )
        SELECT DISTINCT b.item_id FROM ev a JOIN ev b
          ON a.user_id = b.user_id
         AND b.rn BETWEEN a.rn - %(window)s AND a.rn + %(window)s
        WHERE a.id > %(after)s
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, {**_params(None, 0, ()), "after": after})
        return sorted(row[0] for row in cursor.fetchall())


def refresh_cooccurrence_incremental(
    per_item: int = 50, max_share: float | None = INCREMENTAL_MAX_SHARE
) -> tuple[int, int] | None:
    """Recompute only the rows of items whose co-occurrence counts changed since the last
    refresh: those engaged within ``window`` events of an event added since (and in the
    same user's history). Their rows are rebuilt from every user's events, exactly as a
    full refresh builds them. (items recomputed, rows written); None when the caller
    should run a full refresh instead: there is no refresh to build on (none yet, or the
    last one was a replay), events were deleted, or more than ``max_share`` of the active
    items would be recomputed.

    Deleted events (a forgotten user, ``expire_behaviours``) are noticed (fewer events
    up to the last refresh's newest): only a full refresh takes them out. What it does not
    follow until the next full refresh: the score of a pair whose other item gained users
    elsewhere (``n_b`` in the score), events passing the retention age without being
    deleted, and a changed co-occurrence window or positive rating.
    """
    started = time.monotonic()
    last = CooccurrenceRefresh.objects.first()
    if last is None or last.kind == CooccurrenceRefresh.Kind.REPLAY or last.last_event_id is None:
        return None
    table, events = ItemCooccurrence._meta.db_table, Behaviour._meta.db_table
    params = {**_params(None, per_item, ()), "after": last.last_event_id}
    rebuild_sql = f"""
        WITH ev AS (
            SELECT e.user_id, e.item_id,
                   row_number() OVER (PARTITION BY e.user_id ORDER BY e.occurred_at, e.id) AS rn
            FROM {events} e
            WHERE {_COUNTED} AND e.user_id IN (
                SELECT DISTINCT e.user_id FROM {events} e
                WHERE e.item_id = ANY(%(affected)s) AND {_COUNTED}
            )
        ),
        freq AS (
            SELECT e.item_id, count(DISTINCT e.user_id) AS n FROM {events} e
            WHERE {_COUNTED} AND e.item_id IN (SELECT DISTINCT item_id FROM ev)
            GROUP BY e.item_id
        ),
        {_RANKED.format(where_source="WHERE a.item_id = ANY(%(affected)s)")}
        INSERT INTO {table} (item_id, other_id, score, count)
        SELECT item, other, score, n FROM ranked WHERE r <= %(per_item)s
    """
    with transaction.atomic(), connection.cursor() as cursor:
        if (_count_up_to(cursor, last.newest_event_id) or 0) < (last.events_up_to or 0):
            return None  # events were deleted: only a full refresh takes them out
        watermark = max(_watermark(cursor) or 0, last.last_event_id)
        newest, count = _newest(cursor)
        affected = affected_items(last.last_event_id)
        if max_share is not None and len(affected) > max_share * max(
            Item.objects.filter(is_active=True).count(), 1
        ):
            return None
        written = 0
        if affected:
            cursor.execute(
                f"DELETE FROM {table} WHERE item_id = ANY(%(affected)s)", {"affected": affected}
            )
            cursor.execute(rebuild_sql, {**params, "affected": affected})
            written = cursor.rowcount
            if written > 10_000:
                cursor.execute(f"ANALYZE {table}")
        if written or affected:
            _written()
        CooccurrenceRefresh.objects.create(
            kind=CooccurrenceRefresh.Kind.INCREMENTAL,
            last_event_id=watermark,
            newest_event_id=newest,
            events_up_to=count,
            items=len(affected),
            rows=written,
            seconds=time.monotonic() - started,
        )
        return len(affected), written


def scheduled_refresh() -> dict:
    """The hourly task's refresh: incremental while the last full one is younger than
    ``RECOMMENDER_COOCCURRENCE_FULL_HOURS`` and ``RECOMMENDER_COOCCURRENCE_INCREMENTAL``
    is on, else full. What was done, for the task's result."""
    started = time.monotonic()
    if conf.COOCCURRENCE_INCREMENTAL:
        full = CooccurrenceRefresh.objects.filter(kind=CooccurrenceRefresh.Kind.FULL).first()
        young = (
            full is not None
            and (timezone.now() - full.finished_at).total_seconds()
            < float(conf.COOCCURRENCE_FULL_HOURS) * 3600
        )
        done = refresh_cooccurrence_incremental() if young else None
        if done is not None:
            items, rows = done
            return {
                "kind": "incremental",
                "items": items,
                "pairs": rows,
                "seconds": round(time.monotonic() - started, 3),
            }
    rows = refresh_cooccurrence()
    return {"kind": "full", "pairs": rows, "seconds": round(time.monotonic() - started, 3)}


def cooccurrence_candidates(
    seeds: dict[int, float],
    k: int,
    filters: Filters,
    parts: dict[int, dict[int, float]] | None = None,
) -> dict[int, tuple[float, int]]:
    """Items that co-occur with the seed items: id → (weighted score, strongest seed).

    Summed, ranked and cut to ``k`` in SQL: a user's 30 seeds can have 1,500 neighbours.
    ``parts``, when given, is filled with each returned item's terms of that sum (item →
    seed → score × seed weight): what each seed contributed, for the explanations' check
    that a named anchor matters (``evidence.cooccurrence_shares``), without a second read.
    """
    if not seeds:
        return {}
    item_table = Item._meta.db_table
    where, where_params = item_where(filters)
    # Rank first, then check the head against the item filters (1,500 item lookups were
    # most of the query's time). Without a category or attribute filter only inactive
    # items can drop out, so a head of 2k is plenty; with one, everything is checked.
    narrowed = filters.narrows_items
    terms = selected = ""
    if parts is not None:
        terms = ", array_agg(c.item_id) AS seeds, array_agg(c.score * s.weight) AS terms"
        selected = ", r.seeds, r.terms"
    sql = f"""
        WITH ranked AS (
            SELECT c.other_id, sum(c.score * s.weight) AS total,
                   (array_agg(c.item_id ORDER BY c.score * s.weight DESC, c.item_id))[1]
                       AS anchor{terms}
            FROM unnest(%s::bigint[], %s::float8[]) AS s(item_id, weight)
            JOIN {ItemCooccurrence._meta.db_table} c ON c.item_id = s.item_id
            WHERE NOT (c.other_id = ANY(%s::bigint[]))
            GROUP BY c.other_id
            ORDER BY total DESC, c.other_id
            LIMIT %s
        )
        SELECT r.other_id, r.total, r.anchor{selected}
        FROM ranked r JOIN {item_table} ON {item_table}.id = r.other_id
        WHERE {where}
        ORDER BY r.total DESC, r.other_id
        LIMIT %s
    """
    excluded = list(filters.exclude_ids | set(seeds))
    head = None if narrowed else 2 * k
    params = [list(seeds), list(seeds.values()), excluded, head, *where_params, k]
    with dbroute.read_connection().cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if parts is not None:
        for other, _, _, seed_ids, values in rows:
            parts[other] = {
                seed: float(value) for seed, value in zip(seed_ids, values, strict=True)
            }
    return {row[0]: (float(row[1]), row[2]) for row in rows}
