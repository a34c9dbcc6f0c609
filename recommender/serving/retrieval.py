"""Candidate generation, each candidate tagged with the source that found it.

Sources: cosine search on the active space's HNSW index (with filters, using pgvector's
iterative scan so filters do not starve the result), item-to-item co-occurrence (a table
refreshed by a task), popular and trending items (time windows), and text-query matches
(the encoded query plus jieba keywords in titles).
"""

from __future__ import annotations

import functools
import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
from django.core.exceptions import FullResultSet
from django.db import connection, transaction
from django.db.models import Count, Q, Value
from django.db.models.functions import Cast
from django.utils import timezone
from pgvector.django import CosineDistance, VectorField

from encoders import textprep
from recommender import behaviour, sharedcache, spaces
from recommender.conf import conf
from recommender.models import (
    KEYWORD_TEXT,
    Behaviour,
    EncoderSpace,
    Item,
    ItemCooccurrence,
    ItemVector,
    KeywordBigrams,
)
from recommender.spaces import embedding, vector_io


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

    @property
    def narrows_items(self) -> bool:
        """Whether the filters exclude more than inactive items (a category or a range)."""
        return bool(self.category or self.attribute_ranges)

    def item_q(self) -> Q:
        """The filters on ``Item`` (``exclude_ids`` apart: each source applies those)."""
        q = Q()
        if self.active_only:
            q &= Q(is_active=True)
        if self.category:
            q &= Q(category=self.category)
        for name, (low, high) in self.attribute_ranges.items():
            if low is not None:
                q &= Q(**{f"attributes__{name}__gte": low})
            if high is not None:
                q &= Q(**{f"attributes__{name}__lte": high})
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


def ef_search(k: int) -> int:
    """The HNSW search breadth for a top-``k`` query: ``RECOMMENDER_HNSW_EF_SEARCH``
    (default 1000, pgvector's maximum), at least 2k. Wider finds more of the true
    neighbours (recall) at some latency; docs/performance.md has the trade-off measured."""
    configured = int(conf.HNSW_EF_SEARCH)
    return min(max(configured, k * 2, 1), 1000)


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
    filters = filters or Filters(active_only=active_only)
    if exclude:
        filters = replace(filters, exclude_ids=filters.exclude_ids | set(exclude))
    rows = nearest_rows(vector, k, space=space, filters=filters, columns=False)
    return [ScoredItem(row.item_id, row.similarity) for row in rows]


@dataclass(frozen=True)
class NearestRow:
    """A candidate item with what serving needs of it, from the round trip that found it:
    ``similarity`` to the searched vector (``nearest_rows``; 0 from ``candidate_rows``), the
    ``CosineFeatures`` the database computed, and the stored vector when asked for."""

    item_id: int
    similarity: float
    category: str = ""
    created_at: datetime | None = None
    vector: np.ndarray | None = None
    features: dict[str, float] = field(default_factory=dict)


def seen_window() -> int:
    """How many of a user's latest events (with an item) say what they have seen and
    disliked: ``RECOMMENDER_SEEN_WINDOW``. Older ones no longer exclude an item, which
    bounds the work per request whatever the length of the history."""
    return int(conf.SEEN_WINDOW)


@dataclass(frozen=True)
class HistoryExclusion:
    """Leave out what a user did, looked up by the search itself: every item they touched
    (``seen``) or only those they disliked, counting events before ``before`` if given."""

    user_id: int
    seen: bool = True
    before: datetime | None = None

    def items_sql(self) -> tuple[str, list]:
        """A sub-select of those items' ids, and its parameters: from the user's latest
        ``seen_window()`` events with an item, so that a user with a million events costs
        what one with a thousand does (an index range scan of ``behaviour_user_time``)."""
        sql = (
            "SELECT b.item_id FROM (SELECT item_id, kind FROM "
            f"{Behaviour._meta.db_table} WHERE user_id = %s AND item_id IS NOT NULL "
            "AND (%s::timestamptz IS NULL OR occurred_at < %s::timestamptz) "
            "ORDER BY occurred_at DESC LIMIT %s) b WHERE (%s OR b.kind = 'dislike')"
        )
        return sql, [self.user_id, self.before, self.before, seen_window(), self.seen]


@dataclass(frozen=True)
class CosineFeatures:
    """Cosine features the database computes for every row it returns, so candidates'
    vectors need not travel: ``similarity`` to the profile, ``query_similarity`` to the
    request's text, and ``dislike_similarity``, the highest to an item the user
    (``dislikes_of``) disliked before ``before``. ``vectors`` returns the stored vectors
    too (re-ranking for diversity compares candidates with each other)."""

    profile: np.ndarray | None = None
    query: np.ndarray | None = None
    dislikes_of: int | None = None
    before: datetime | None = None
    vectors: bool = False

    NAMES = ("similarity", "query_similarity", "dislike_similarity")

    def sql(self, space: EncoderSpace, column: str) -> tuple[str, list, str, list]:
        """A WITH clause and its parameters, then select-list items (``NAMES`` and the
        vector) and theirs, for rows whose stored vector is ``column``."""
        with_sql, with_params = "", []
        items, params = [], []
        for vector in (self.profile, self.query):
            if vector is None:
                items.append("NULL::float8")
            else:
                items.append(f"1 - ({column} <=> %s)")
                params.append(vector_io.Vector(vector))
        if self.dislikes_of is not None:
            disliked, disliked_params = HistoryExclusion(
                self.dislikes_of, seen=False, before=self.before
            ).items_sql()
            with_sql = (
                f"WITH disliked AS MATERIALIZED (SELECT d.embedding FROM "
                f"{ItemVector._meta.db_table} d WHERE d.space_id = %s "
                f"AND d.item_id = ANY(ARRAY({disliked}))) "
            )
            with_params = [space.pk, *disliked_params]
            items.append(f"(SELECT max(1 - ({column} <=> d.embedding)) FROM disliked d)")
        else:
            items.append("NULL::float8")
        items.append(column if self.vectors else "NULL::bytea")
        return with_sql, with_params, ", ".join(items), params

    @classmethod
    def read(cls, values: Sequence) -> tuple[dict[str, float], np.ndarray | None]:
        """The features (missing where an item has no vector or a zero one) and the
        vector, from the select-list items of ``sql``."""
        features = {}
        for name, value in zip(cls.NAMES, values[:3], strict=True):
            if value is not None and value == value:  # NaN: a zero vector has no angle
                features[name] = max(value, 0.0) if name == "dislike_similarity" else value
        return features, vector_io.decode(values[3])


def nearest_rows(
    vector: np.ndarray | Sequence[float],
    k: int,
    *,
    space: EncoderSpace | None = None,
    filters: Filters | None = None,
    columns: bool = True,
    history: HistoryExclusion | None = None,
    cosine: CosineFeatures | None = None,
) -> list[NearestRow]:
    """``nearest_items`` with each item's category and creation time (``columns``) and its
    ``cosine`` features, in one binary round trip (the query vector goes in as binary).
    With ``history``, the user's items are left out in the same statement, so the search
    need not wait for their history.

    The cast to ``vector(dim)`` matches the space's partial HNSW index expression; without
    it PostgreSQL cannot use the index. Filtered scans keep searching until k rows pass
    the filters (pgvector's iterative scan); its relaxed order is re-sorted here by the
    exact distance selected anyway.
    """
    space = space or spaces.active_space()
    filters = filters or Filters()
    cast = spaces.vector_cast(space)
    item_table, vector_table = Item._meta.db_table, ItemVector._meta.db_table
    where, where_params = item_where(filters)
    with_sql, with_params, extra, extra_params = "", [], "", []
    if columns:
        cosine = cosine or CosineFeatures()
        with_sql, with_params, features, extra_params = cosine.sql(space, "v.embedding")
        extra = f", {item_table}.category, {item_table}.created_at, {features}"
    touched, touched_params = "", []
    if history is not None:
        # An uncorrelated sub-select: run once, then a membership test per row scanned.
        items, touched_params = history.items_sql()
        touched = f" AND NOT (v.item_id = ANY(ARRAY({items})))"
    sql = (
        f"{with_sql}SELECT v.item_id, v.embedding::{cast} <=> %s AS distance{extra} "
        f"FROM {vector_table} v JOIN {item_table} ON {item_table}.id = v.item_id "
        f"WHERE v.space_id = %s AND NOT (v.item_id = ANY(%s::bigint[])){touched} AND {where} "
        "ORDER BY distance LIMIT %s"
    )
    params = [
        *with_params,
        vector_io.Vector(vector),
        *extra_params,
        space.pk,
        list(filters.exclude_ids),
        *touched_params,
        *where_params,
        k,
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        # Settings for this transaction only (safe behind transaction-mode poolers).
        cursor.execute(
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
            "set_config('hnsw.ef_search', %s, true)",
            [str(ef_search(k))],
        )
        rows = vector_io.fetch(sql, params)
    rows.sort(key=lambda row: row[1])
    if not columns:
        return [NearestRow(row[0], 1.0 - float(row[1])) for row in rows]
    found = []
    for item_id, distance, category, created, *values in rows:
        features, stored = CosineFeatures.read(values)
        similarity = 1.0 - float(distance)
        found.append(NearestRow(item_id, similarity, category, created, stored, features))
    return found


def candidate_rows(
    space: EncoderSpace | None,
    ids: Sequence[int],
    filters: Filters,
    cosine: CosineFeatures | None = None,
) -> dict[int, NearestRow]:
    """The rows of ``ids`` that pass ``filters``, with their ``cosine`` features in
    ``space``, in one binary round trip (the sources other than the vector searches)."""
    if not ids:
        return {}
    table = Item._meta.db_table
    where, where_params = item_where(filters)
    with_sql, with_params, features, feature_params = "", [], "NULL, NULL, NULL, NULL", []
    if space is not None:
        cosine = cosine or CosineFeatures()
        with_sql, with_params, features, feature_params = cosine.sql(space, "v.embedding")
    rows = vector_io.fetch(
        f"{with_sql}SELECT {table}.id, {table}.category, {table}.created_at, {features} "
        f"FROM {table} LEFT JOIN {ItemVector._meta.db_table} v "
        f"ON v.item_id = {table}.id AND v.space_id = %s "
        f"WHERE {table}.id = ANY(%s::bigint[]) AND {where}",
        [
            *with_params,
            *feature_params,
            space.pk if space is not None else None,
            list(ids),
            *where_params,
        ],
    )
    found = {}
    for item_id, category, created, *values in rows:
        features, stored = CosineFeatures.read(values)
        found[item_id] = NearestRow(item_id, 0.0, category, created, stored, features)
    return found


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
        # The bigram containment finds the candidates on the index (item_keyword_bigrams);
        # icontains then keeps the exact substring matches.
        ids = (
            Item.objects.annotate(keyword_bigrams=KeywordBigrams(KEYWORD_TEXT))
            .filter(keyword_bigrams__contains=KeywordBigrams(Value(word.upper())))
            .filter(filters.item_q())
            .filter(Q(title__icontains=word) | Q(tags__icontains=word))
            .exclude(pk__in=list(filters.exclude_ids))
            .values_list("pk", flat=True)[: k * 2]
        )
        for item_id in ids:
            matched[item_id] = matched.get(item_id, 0) + 1
    return dict(sorted(matched.items(), key=lambda kv: -kv[1])[:k])


# --- Co-occurrence ---------------------------------------------------------------------


def cooccurrence_window() -> int:
    return int(conf.COOCCURRENCE_WINDOW)


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
        "kinds": list(behaviour.ENGAGED),
        "as_of": as_of,
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
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {other: (float(total), anchor) for other, total, anchor in cursor.fetchall()}


def item_where(filters: Filters) -> tuple[str, list]:
    """``filters.item_q()`` as SQL over the item table's own name (for raw joins).

    Compiled once per distinct filter (the ORM takes ~0.3 ms, three times a request)."""
    ranges = tuple(sorted(filters.attribute_ranges.items()))
    sql, params = _compiled_where(filters.category, ranges, filters.active_only)
    return sql, list(params)


@functools.lru_cache(maxsize=512)
def _compiled_where(category, ranges, active_only) -> tuple[str, tuple]:
    filters = Filters(category=category, attribute_ranges=dict(ranges), active_only=active_only)
    query = Item.objects.filter(filters.item_q()).query
    try:
        sql, params = query.get_compiler(connection=connection).compile(query.where)
    except FullResultSet:
        return "TRUE", ()
    return sql or "TRUE", tuple(params)


# --- Popular and trending ----------------------------------------------------------------


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


def popularity(as_of: datetime | None = None, window_days: int | None = None) -> ScoreTable:
    """Weighted engagement counts per item in the window before ``as_of`` (cached briefly).

    When the window holds nothing (an old dataset, a quiet shop) all time is used.
    """
    window_days = window_days or int(conf.POPULAR_WINDOW_DAYS)
    end = as_of or timezone.now()

    def compute() -> dict[int, float]:
        totals = _weighted_counts(end - timedelta(days=window_days), end)
        if len(totals) < 50:
            for item_id, value in _weighted_counts(None, end).items():
                totals.setdefault(item_id, 0.0)
                totals[item_id] += 0.1 * value
        return totals

    return _cached_per_minute(f"popularity:{window_days}", end, compute)


def trending(as_of: datetime | None = None) -> ScoreTable:
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
    """The ``k`` best-scored items that pass the filters.

    Popularity and trending tables hold active items only (as of their minute), so with no
    category or attribute filter the head is taken as it is; the caller's final item fetch
    applies ``filters`` again. With such a filter the head is checked in SQL.
    """
    ranked = scores.head() if isinstance(scores, ScoreTable) else ScoreTable(scores).head()
    narrowed = filters.narrows_items
    head = list(
        itertools.islice(
            ((item_id, score) for item_id, score in ranked if item_id not in filters.exclude_ids),
            k * 4 if narrowed else k,
        )
    )
    if narrowed:
        allowed = set(
            Item.objects.filter(filters.item_q())
            .filter(pk__in=[item_id for item_id, _ in head])
            .values_list("pk", flat=True)
        )
        head = [(item_id, score) for item_id, score in head if item_id in allowed]
    return dict(head[:k])


def new_items(k: int, filters: Filters, as_of: datetime | None = None) -> list[int]:
    """The most recently added items (a cold-start source for brand-new catalogues)."""
    query = Item.objects.filter(filters.item_q()).exclude(pk__in=list(filters.exclude_ids))
    if as_of is not None:
        query = query.filter(created_at__lt=as_of)
    return list(query.order_by("-created_at").values_list("pk", flat=True)[:k])
