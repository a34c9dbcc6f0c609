"""Candidate generation, each candidate tagged with the source that found it.

Sources: cosine search on the active space's HNSW index (with filters, using pgvector's
iterative scan so filters do not starve the result), item-to-item co-occurrence (a table
refreshed by a task), popular and trending items (time windows), and text-query matches
(the encoded query plus jieba keywords in titles).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Q
from django.db.models.functions import Cast
from django.utils import timezone
from pgvector.django import CosineDistance, VectorField

from encoders import textprep
from recommender import embedding, spaces
from recommender.models import Behaviour, EncoderSpace, Item, ItemCooccurrence, ItemVector

# Kinds that say "I wanted this" for co-occurrence and popularity.
ENGAGED_KINDS = ("view", "click", "cart", "purchase", "like", "rating", "review", "share")


@dataclass(frozen=True)
class ScoredItem:
    """An item id with its cosine similarity to the query vector."""

    item_id: int
    similarity: float


@dataclass
class Filters:
    """Business filters applied in SQL to every source."""

    category: str | None = None
    attribute_ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    exclude_ids: set[int] = field(default_factory=set)
    active_only: bool = True

    def item_q(self, prefix: str = "") -> Q:
        q = Q()
        if self.active_only:
            q &= Q(**{f"{prefix}is_active": True})
        if self.category:
            q &= Q(**{f"{prefix}category": self.category})
        for name, (low, high) in self.attribute_ranges.items():
            if low is not None:
                q &= Q(**{f"{prefix}attributes__{name}__gte": low})
            if high is not None:
                q &= Q(**{f"{prefix}attributes__{name}__lte": high})
        return q


def vector_query(space: EncoderSpace, vector: np.ndarray | Sequence[float]):
    """Vectors of ``space`` annotated with cosine distance, ordered nearest first.

    The cast to ``vector(dim)`` matches the space's partial HNSW index expression; without
    it PostgreSQL cannot use the index.
    """
    column = Cast("embedding", VectorField(dimensions=space.dim))
    return (
        ItemVector.objects.filter(space=space)
        .annotate(distance=CosineDistance(column, np.asarray(vector, dtype=np.float32)))
        .order_by("distance")
    )


def nearest_items(
    vector: np.ndarray | Sequence[float],
    k: int = 10,
    *,
    space: EncoderSpace | None = None,
    exclude: Sequence[int] = (),
    active_only: bool = True,
    filters: Filters | None = None,
) -> list[ScoredItem]:
    """The ``k`` items nearest to ``vector`` by cosine in ``space`` (default: active)."""
    space = space or spaces.active_space()
    filters = filters or Filters(active_only=active_only)
    query = vector_query(space, vector).filter(filters.item_q("item__"))
    excluded = set(exclude) | filters.exclude_ids
    if excluded:
        query = query.exclude(item_id__in=list(excluded))
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Filtered HNSW scans keep searching until k rows pass the filter (pgvector 0.8);
            # relaxed order is re-sorted below by the exact distance we select anyway.
            cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            cursor.execute("SET LOCAL hnsw.ef_search = %s", [max(40, min(k * 2, 1000))])
        rows = list(query.values_list("item_id", "distance")[:k])
    rows.sort(key=lambda row: row[1])
    return [ScoredItem(item_id, 1.0 - float(distance)) for item_id, distance in rows]


def search_text(text: str, k: int = 10, *, space: EncoderSpace | None = None) -> list[ScoredItem]:
    """Items nearest to a free text, encoded by the space's own encoder."""
    space = space or spaces.active_space()
    vector = embedding.encoder_for(space).encode([text])[0]
    return nearest_items(vector, k, space=space)


def keyword_matches(text: str, k: int, filters: Filters) -> dict[int, int]:
    """Items whose title or tags contain the query's jieba keywords: id → keywords matched."""
    words = [word for word in textprep.keywords(text, top_k=5) if len(word) >= 2]
    if not words:
        return {}
    matched: dict[int, int] = {}
    for word in words:
        ids = (
            Item.objects.filter(filters.item_q())
            .filter(Q(title__icontains=word) | Q(tags__icontains=word))
            .exclude(pk__in=list(filters.exclude_ids))
            .values_list("pk", flat=True)[: k * 2]
        )
        for item_id in ids:
            matched[item_id] = matched.get(item_id, 0) + 1
    return dict(sorted(matched.items(), key=lambda kv: -kv[1])[:k])


# --- Co-occurrence ---------------------------------------------------------------------


def cooccurrence_window() -> int:
    return int(getattr(settings, "RECOMMENDER_COOCCURRENCE_WINDOW", 10))


def refresh_cooccurrence(
    *,
    as_of: datetime | None = None,
    per_item: int = 50,
    exclude_events: Sequence[int] = (),
) -> int:
    """Recompute the item-to-item table from engaged events (before ``as_of``, and without
    the behaviours in ``exclude_events``: offline evaluation's held-out events).

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
        "kinds": list(ENGAGED_KINDS),
        "as_of": as_of,
        "window": cooccurrence_window(),
        "per_item": per_item,
        "exclude": list(exclude_events),
        "min_rating": float(getattr(settings, "RECOMMENDER_COOCCURRENCE_MIN_RATING", 3.5)),
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
    """Items that co-occur with the seed items: id → (weighted score, strongest seed)."""
    if not seeds:
        return {}
    rows = (
        ItemCooccurrence.objects.filter(item_id__in=list(seeds))
        .filter(filters.item_q("other__"))
        .values_list("item_id", "other_id", "score")
    )
    # Exclusions are applied here rather than as a NOT IN of a long history in SQL.
    excluded = filters.exclude_ids | set(seeds)
    found: dict[int, tuple[float, int, float]] = {}
    for seed, other, score in rows:
        if other in excluded:
            continue
        contribution = score * seeds[seed]
        total, anchor, best = found.get(other, (0.0, seed, 0.0))
        if contribution > best:
            anchor, best = seed, contribution
        found[other] = (total + contribution, anchor, best)
    ranked = sorted(found.items(), key=lambda kv: -kv[1][0])[:k]
    return {item_id: (total, anchor) for item_id, (total, anchor, _) in ranked}


# --- Popular and trending ----------------------------------------------------------------


def _weighted_counts(start: datetime | None, end: datetime) -> dict[int, float]:
    weights = settings.RECOMMENDER_BEHAVIOUR_WEIGHTS
    events = Behaviour.objects.filter(item__isnull=False, occurred_at__lt=end)
    if start is not None:
        events = events.filter(occurred_at__gte=start)
    totals: dict[int, float] = {}
    for kind, item_id, n in (
        events.filter(kind__in=ENGAGED_KINDS)
        .values("kind", "item_id")
        .annotate(n=Count("id"))
        .values_list("kind", "item_id", "n")
    ):
        totals[item_id] = totals.get(item_id, 0.0) + max(float(weights.get(kind, 1.0)), 0.5) * n
    return totals


def _cached_per_minute(name: str, end: datetime, compute):
    """Aggregates over the behaviour log, shared by all processes for a minute (Redis).

    They scan many rows; recomputing them on every request would dominate serving.
    """
    key = f"recsite:{name}:{end.replace(second=0, microsecond=0).isoformat()}"
    cached = cache.get(key)
    if cached is None:
        cached = compute()
        cache.set(key, cached, 60)
    return cached


def popularity(as_of: datetime | None = None, window_days: int | None = None) -> dict[int, float]:
    """Weighted engagement counts per item in the window before ``as_of`` (cached briefly).

    When the window holds nothing (an old dataset, a quiet shop) all time is used.
    """
    window_days = window_days or int(getattr(settings, "RECOMMENDER_POPULAR_WINDOW_DAYS", 30))
    end = as_of or timezone.now()

    def compute() -> dict[int, float]:
        totals = _weighted_counts(end - timedelta(days=window_days), end)
        if len(totals) < 50:
            for item_id, value in _weighted_counts(None, end).items():
                totals.setdefault(item_id, 0.0)
                totals[item_id] += 0.1 * value
        return totals

    return _cached_per_minute(f"popularity:{window_days}", end, compute)


def trending(as_of: datetime | None = None) -> dict[int, float]:
    """Items whose last-7-days engagement beats their previous-28-days weekly rate."""
    end = as_of or timezone.now()

    def compute() -> dict[int, float]:
        recent = _weighted_counts(end - timedelta(days=7), end)
        before = _weighted_counts(end - timedelta(days=35), end - timedelta(days=7))
        return {
            item_id: value / (before.get(item_id, 0.0) / 4.0 + 1.0)
            for item_id, value in recent.items()
            if value >= 2
        }

    return _cached_per_minute("trending", end, compute)


def top_items(scores: dict[int, float], k: int, filters: Filters) -> dict[int, float]:
    """The ``k`` best-scored items that pass the filters."""
    # Only the head can pass: no need to sort the whole (catalogue-sized) table.
    ranked = heapq.nlargest(
        k * 4,
        (kv for kv in scores.items() if kv[0] not in filters.exclude_ids),
        key=lambda kv: kv[1],
    )
    allowed = set(
        Item.objects.filter(filters.item_q())
        .filter(pk__in=[item_id for item_id, _ in ranked])
        .values_list("pk", flat=True)
    )
    return {item_id: score for item_id, score in ranked if item_id in allowed}


def new_items(k: int, filters: Filters, as_of: datetime | None = None) -> list[int]:
    """The most recently added items (a cold-start source for brand-new catalogues)."""
    query = Item.objects.filter(filters.item_q()).exclude(pk__in=list(filters.exclude_ids))
    if as_of is not None:
        query = query.filter(created_at__lt=as_of)
    return list(query.order_by("-created_at").values_list("pk", flat=True)[:k])


def log_scale(values: Iterable[float]) -> float:
    """The normaliser for popularity features: log(1 + max)."""
    top = max(values, default=0.0)
    return math.log1p(top) if top > 0 else 1.0
