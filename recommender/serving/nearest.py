"""The vector source: HNSW nearest-neighbour search in the active space, with the user's
exclusions and the cosine features computed by PostgreSQL, and candidates' rows."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
from django.db import transaction
from django.db.models.functions import Cast
from pgvector.django import CosineDistance, VectorField

from recommender import behaviour, dbroute, spaces
from recommender.conf import conf
from recommender.models import (
    Behaviour,
    EncoderSpace,
    Item,
    ItemVector,
)
from recommender.serving.filters import Filters, item_where
from recommender.spaces import embedding, vector_io

if TYPE_CHECKING:  # it imports this module
    from recommender.serving.memory_search import Snapshot


@dataclass(frozen=True)
class ScoredItem:
    """An item id with its cosine similarity to the query vector."""

    item_id: int
    similarity: float


def vector_query(space: EncoderSpace, vector: np.ndarray | Sequence[float]):
    """Vectors of ``space`` annotated with cosine distance, ordered nearest first.

    The cast to the space's index type (``vector(dim)``, or ``halfvec(dim)`` for a
    half-precision index: ``spaces.vector_field``) matches its partial HNSW index
    expression; without it PostgreSQL cannot use the index. The query vector (serialised
    as a full-precision vector) is cast the same way, so that the distance is the operator
    of the index's operator class.
    """
    from django.db.models import Value

    cast_to = spaces.vector_field(space)
    query = Value(np.asarray(vector, dtype=np.float32), output_field=VectorField())
    return (
        ItemVector.objects.filter(space=space)
        .annotate(distance=CosineDistance(Cast("embedding", cast_to), Cast(query, cast_to)))
        .order_by("distance")
    )


def ef_search(k: int, configured: int | None = None) -> int:
    """The HNSW search breadth for a top-``k`` query: ``configured`` (default
    ``RECOMMENDER_HNSW_EF_SEARCH``: 1000, pgvector's maximum), at least 2k. Wider finds
    more of the true neighbours (recall) at some latency; docs/performance.md has the
    trade-off measured."""
    configured = int(conf.HNSW_EF_SEARCH if configured is None else configured)
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

    def events_sql(self) -> tuple[str, list]:
        """A select of ``(item_id, kind)`` of the user's latest ``seen_window()`` events
        with an item, and its parameters: a user with a million events costs what one
        with a thousand does (an index range scan of ``behaviour_user_time``)."""
        sql = (
            "SELECT item_id, kind FROM "
            f"{Behaviour._meta.db_table} WHERE user_id = %s AND item_id IS NOT NULL "
            "AND NOT (kind = ANY(%s)) "
            "AND (%s::timestamptz IS NULL OR occurred_at < %s::timestamptz) "
            "ORDER BY occurred_at DESC LIMIT %s"
        )
        params = [self.user_id, list(behaviour.SIGNALLESS), self.before, self.before]
        return sql, [*params, seen_window()]

    def items_sql(self, events: str | None = None) -> tuple[str, list]:
        """A sub-select of the left-out items' ids, and its parameters; from ``events``,
        the name of a CTE holding ``events_sql()``, if the statement has one."""
        if events is None:
            events, params = self.events_sql()
            events = f"({events})"
        else:
            params = []
        return f"SELECT b.item_id FROM {events} b WHERE (%s OR b.kind = 'dislike')", [
            *params,
            self.seen,
        ]


@dataclass(frozen=True)
class CosineFeatures:
    """Cosine features the database computes for every row it returns, so candidates'
    vectors need not travel: ``similarity`` to the profile, ``query_similarity`` to the
    request's text, ``dislike_similarity``, the highest to an item the user
    (``dislikes_of``) disliked before ``before``, and ``recent_similarity`` to the mean of
    the user's last few items (``recent``). ``vectors`` returns the stored vectors too
    (re-ranking for diversity compares candidates with each other)."""

    profile: np.ndarray | None = None
    query: np.ndarray | None = None
    dislikes_of: int | None = None
    before: datetime | None = None
    vectors: bool = False
    recent: np.ndarray | None = None

    NAMES = ("similarity", "query_similarity", "dislike_similarity", "recent_similarity")

    def sql(
        self, space: EncoderSpace, column: str, events: str | None = None
    ) -> tuple[list[str], list, str, list]:
        """Common table expressions (without ``WITH``) and their parameters, then
        select-list items (``NAMES`` and the vector) and theirs, for rows whose stored
        vector is ``column``. ``events``: the name of a CTE of the statement holding the
        disliking user's ``HistoryExclusion.events_sql()``, which the dislikes then read
        instead of running that select again."""
        ctes, with_params = [], []
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
            ).items_sql(events)
            ctes.append(
                f"disliked AS MATERIALIZED (SELECT d.embedding FROM "
                f"{ItemVector._meta.db_table} d WHERE d.space_id = %s "
                f"AND d.item_id = ANY(ARRAY({disliked})))"
            )
            with_params = [space.pk, *disliked_params]
            items.append(f"(SELECT max(1 - ({column} <=> d.embedding)) FROM disliked d)")
        else:
            items.append("NULL::float8")
        if self.recent is None:
            items.append("NULL::float8")
        else:
            items.append(f"1 - ({column} <=> %s)")
            params.append(vector_io.Vector(self.recent))
        items.append(column if self.vectors else "NULL::bytea")
        return ctes, with_params, ", ".join(items), params

    @classmethod
    def read(cls, values: Sequence) -> tuple[dict[str, float], np.ndarray | None]:
        """The features (missing where an item has no vector or a zero one) and the
        vector, from the select-list items of ``sql``."""
        features = {}
        count = len(cls.NAMES)
        for name, value in zip(cls.NAMES, values[:count], strict=True):
            if value is not None and value == value:  # NaN: a zero vector has no angle
                features[name] = max(value, 0.0) if name == "dislike_similarity" else value
        return features, vector_io.decode(values[count])


@dataclass(frozen=True)
class Search:
    """One nearest-neighbour search of a request: its query vector, how many rows it wants
    and its breadth (``ef``: see ``ef_search``; None: ``RECOMMENDER_HNSW_EF_SEARCH``)."""

    vector: np.ndarray | Sequence[float]
    k: int
    ef: int | None = None


def nearest_rows(
    vector: np.ndarray | Sequence[float],
    k: int,
    *,
    space: EncoderSpace | None = None,
    filters: Filters | None = None,
    columns: bool = True,
    history: HistoryExclusion | None = None,
    cosine: CosineFeatures | None = None,
    ef: int | None = None,
) -> list[NearestRow]:
    """``nearest_items`` with each item's category and creation time (``columns``) and its
    ``cosine`` features, in one binary round trip (the query vector goes in as binary).
    With ``history``, the user's items are left out in the same statement, so the search
    need not wait for their history. ``ef``: the search breadth asked for (default
    ``RECOMMENDER_HNSW_EF_SEARCH``; see ``ef_search``). One ``Search`` of
    ``nearest_searches``."""
    return nearest_searches(
        [Search(vector, k, ef)],
        space=space,
        filters=filters,
        columns=columns,
        history=history,
        cosine=cosine,
    )[0]


def nearest_searches(
    searches: Sequence[Search],
    *,
    space: EncoderSpace | None = None,
    filters: Filters | None = None,
    columns: bool = True,
    history: HistoryExclusion | None = None,
    cosine: CosineFeatures | None = None,
) -> list[list[NearestRow]]:
    """The rows of each search, nearest first: the searches of one breadth go to the
    database as one statement (a ``UNION ALL`` of one index scan each, sharing the
    exclusions and the features' sub-selects), in one transaction that sets the breadth;
    a request's searches usually share one.

    The cast to the space's index type matches its partial HNSW index expression; without
    it PostgreSQL cannot use the index. Filtered scans keep searching until k rows pass
    the filters (pgvector's iterative scan); its relaxed order is re-sorted here by the
    exact distance selected anyway.
    """
    space = space or spaces.active_space()
    filters = filters or Filters()
    groups: dict[int, list[int]] = {}
    for n, search in enumerate(searches):
        groups.setdefault(ef_search(search.k, search.ef), []).append(n)
    found: list[list[NearestRow]] = [[] for _ in searches]
    for ef, members in groups.items():
        rows = _search_rows(
            [searches[n] for n in members], ef, space, filters, columns, history, cosine
        )
        for position, item_id, distance, *rest in rows:
            n = members[position]
            similarity = 1.0 - float(distance)
            if not columns:
                found[n].append(NearestRow(item_id, similarity))
                continue
            category, created, *values = rest
            features, stored = CosineFeatures.read(values)
            found[n].append(NearestRow(item_id, similarity, category, created, stored, features))
    for rows in found:
        rows.sort(key=lambda row: -row.similarity)
    return found


def _search_rows(searches, ef, space, filters, columns, history, cosine) -> list[tuple]:
    """(position in ``searches``, item id, distance, …) rows of one statement."""
    cast = spaces.vector_cast(space)
    item_table, vector_table = Item._meta.db_table, ItemVector._meta.db_table
    where, where_params = item_where(filters)
    ctes, with_params, extra, extra_params = [], [], "", []
    events = None
    if history is not None:
        # The user's latest events, read once for the exclusion of every branch and for
        # the dislikes' feature when both are the same user's at the same time.
        events_sql, events_params = history.events_sql()
        ctes, with_params, events = (
            [f"history_events AS MATERIALIZED ({events_sql})"],
            [*events_params],
            "history_events",
        )
    if columns:
        cosine = cosine or CosineFeatures()
        shared = history is not None and (cosine.dislikes_of, cosine.before) == (
            history.user_id,
            history.before,
        )
        more, more_params, features, extra_params = cosine.sql(
            space, "v.embedding", events if shared else None
        )
        ctes, with_params = [*ctes, *more], [*with_params, *more_params]
        extra = f", {item_table}.category, {item_table}.created_at, {features}"
    touched, touched_params = "", []
    if history is not None:
        # An uncorrelated sub-select: run once, then a membership test per row scanned.
        items, touched_params = history.items_sql(events)
        touched = f" AND NOT (v.item_id = ANY(ARRAY({items})))"
    excluded = list(filters.exclude_ids)
    branches, params = [], list(with_params)
    for position, search in enumerate(searches):
        branches.append(
            f"(SELECT {position} AS search, v.item_id, "
            f"v.embedding::{cast} <=> %s::{cast} AS distance{extra} "
            f"FROM {vector_table} v JOIN {item_table} ON {item_table}.id = v.item_id "
            f"WHERE v.space_id = %s AND NOT (v.item_id = ANY(%s::bigint[])){touched} "
            f"AND {where} ORDER BY distance LIMIT %s)"
        )
        params += [
            vector_io.Vector(search.vector),
            *extra_params,
            space.pk,
            excluded,
            *touched_params,
            *where_params,
            search.k,
        ]
    sql = _with(ctes) + " UNION ALL ".join(branches)
    db = dbroute.read_connection()  # a standby's, within a request that may read from one
    with transaction.atomic(using=db.alias), db.cursor() as cursor:
        # Settings for this transaction only (safe behind transaction-mode poolers).
        cursor.execute(
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
            "set_config('hnsw.ef_search', %s, true)",
            [str(ef)],
        )
        # Never prepared: a generic plan would not see a rule's constants, and could
        # take the HNSW scan for a filter that an attribute index answers exactly.
        return vector_io.fetch(sql, params, using=db, prepare=False)


def _with(ctes: Sequence[str]) -> str:
    """A WITH clause of ``ctes``, or nothing."""
    return f"WITH {', '.join(ctes)} " if ctes else ""


def candidate_rows(
    space: EncoderSpace | None,
    ids: Sequence[int],
    filters: Filters,
    cosine: CosineFeatures | None = None,
    *,
    in_memory: Snapshot | None = None,
    disliked: Collection[int] = (),
) -> dict[int, NearestRow]:
    """The rows of ``ids`` that pass ``filters``, with their ``cosine`` features in
    ``space``, in one binary round trip (the sources other than the vector searches).

    With ``in_memory``, the space's snapshot of a small catalogue (``memory_search``),
    the statement only checks the filters and reads the rows; the features (the dislikes'
    from the ``disliked`` items, ``cosine.dislikes_of``'s) and vectors come from the
    snapshot, as the SQL computes them."""
    if not ids:
        return {}
    table = Item._meta.db_table
    where, where_params = item_where(filters)
    if in_memory is not None and space is not None:
        passed = vector_io.fetch(
            f"SELECT id, category, created_at FROM {table} WHERE id = ANY(%s::bigint[]) "
            f"AND {where}",
            [list(ids), *where_params],
        )
        computed = in_memory.features(
            [row[0] for row in passed], cosine or CosineFeatures(), disliked
        )
        return {
            item_id: NearestRow(item_id, 0.0, category, created, *computed.get(item_id, _NONE))
            for item_id, category, created in passed
        }
    ctes, with_params, features, feature_params = [], [], "NULL, NULL, NULL, NULL, NULL", []
    if space is not None:
        cosine = cosine or CosineFeatures()
        ctes, with_params, features, feature_params = cosine.sql(space, "v.embedding")
    rows = vector_io.fetch(
        f"{_with(ctes)}SELECT {table}.id, {table}.category, {table}.created_at, {features} "
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


_NONE: tuple[None, dict] = (None, {})  # no vector in the snapshot: no features


def search_text(text: str, k: int = 10, *, space: EncoderSpace | None = None) -> list[ScoredItem]:
    """Items nearest to a free text, encoded by the space's own encoder."""
    space = space or spaces.active_space()
    vector = embedding.encoder_for(space).encode([text])[0]
    return nearest_items(vector, k, space=space)
