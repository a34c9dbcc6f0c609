"""The co-occurrence source: items engaged with close together in users' histories,
refreshed into a table, and the candidates they give for a user's recent items."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import connection, transaction

from recommender import behaviour, dbroute
from recommender.conf import conf
from recommender.models import (
    Behaviour,
    Item,
    ItemCooccurrence,
)
from recommender.serving.filters import Filters, item_where


def cooccurrence_window() -> int:
    return int(conf.COOCCURRENCE_WINDOW)


def refresh_cooccurrence(
    *,
    as_of: datetime | None = None,
    per_item: int = 50,
    exclude_events: Sequence[int] = (),
) -> int:
    """Recompute the item-to-item table from engaged events (before ``as_of``, within the
    retention, and without the behaviours in ``exclude_events``: offline evaluation's
    held-out events).

    Two items co-occur when one user engaged with both within ``window`` consecutive
    events. Score: shrunk cosine, n / sqrt(n_a n_b) * n / (n + 2). Raw SQL because the
    windowed self-join and top-N per item are one statement here and many in the ORM.
    """
    table = ItemCooccurrence._meta.db_table
    sql = f"""
        WITH ev AS (
            SELECT user_id, item_id,
                   row_number() OVER (PARTITION BY user_id ORDER BY occurred_at, id) AS rn
            FROM {Behaviour._meta.db_table}
            WHERE item_id IS NOT NULL AND kind = ANY(%(kinds)s)
              AND (%(as_of)s::timestamptz IS NULL OR occurred_at < %(as_of)s::timestamptz)
              AND (%(since)s::timestamptz IS NULL OR occurred_at >= %(since)s::timestamptz)
              AND (kind <> 'rating' OR value IS NULL OR value >= %(min_rating)s)
              AND NOT (id = ANY(%(exclude)s))
        ),
        freq AS (SELECT item_id, count(DISTINCT user_id) AS n FROM ev GROUP BY item_id),
        pairs AS (
            SELECT a.item_id AS item, b.item_id AS other, count(DISTINCT a.user_id) AS n
            FROM ev a JOIN ev b
              ON a.user_id = b.user_id AND a.item_id <> b.item_id
             AND b.rn BETWEEN a.rn - %(window)s AND a.rn + %(window)s
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
        INSERT INTO {table} (item_id, other_id, score, count)
        SELECT item, other, score, n FROM ranked WHERE r <= %(per_item)s
    """
    params = {
        "kinds": list(behaviour.ENGAGED),
        "as_of": as_of,
        "since": behaviour.retention_start(as_of),  # older events no longer count
        "window": cooccurrence_window(),
        "per_item": per_item,
        "exclude": list(exclude_events),
        "min_rating": behaviour.positive_rating(),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table}")
        cursor.execute(sql, params)
        written = cursor.rowcount
        # Fresh statistics, or the planner scans the whole table for every lookup.
        cursor.execute(f"ANALYZE {table}")
        return written


def cooccurrence_candidates(
    seeds: dict[int, float], k: int, filters: Filters
) -> dict[int, tuple[float, int]]:
    """Items that co-occur with the seed items: id → (weighted score, strongest seed).

    Summed, ranked and cut to ``k`` in SQL: a user's 30 seeds can have 1,500 neighbours.
    """
    if not seeds:
        return {}
    item_table = Item._meta.db_table
    where, where_params = item_where(filters)
    # Rank first, then check the head against the item filters (1,500 item lookups were
    # most of the query's time). Without a category or attribute filter only inactive
    # items can drop out, so a head of 2k is plenty; with one, everything is checked.
    narrowed = filters.narrows_items
    sql = f"""
        WITH ranked AS (
            SELECT c.other_id, sum(c.score * s.weight) AS total,
                   (array_agg(c.item_id ORDER BY c.score * s.weight DESC, c.item_id))[1]
                       AS anchor
            FROM unnest(%s::bigint[], %s::float8[]) AS s(item_id, weight)
            JOIN {ItemCooccurrence._meta.db_table} c ON c.item_id = s.item_id
            WHERE NOT (c.other_id = ANY(%s::bigint[]))
            GROUP BY c.other_id
            ORDER BY total DESC, c.other_id
            LIMIT %s
        )
        SELECT r.other_id, r.total, r.anchor
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
        return {other: (float(total), anchor) for other, total, anchor in cursor.fetchall()}
