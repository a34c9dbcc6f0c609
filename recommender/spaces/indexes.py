"""Each encoder space's HNSW index: a partial expression index over the space's own rows,
``USING hnsw ((embedding::vector(D)) vector_cosine_ops) WHERE space_id = N``, so spaces of
different dimensions share one table.

A space whose ``index_precision`` is ``halfvec`` (pgvector >= 0.7) indexes
``embedding::halfvec(D)`` with ``halfvec_cosine_ops`` instead: the stored vectors stay full
precision, only the graph holds half-precision copies (half the size).

A space's graph has its own shape too (``index_m`` and ``index_ef_construction``, pgvector's
``m`` and ``ef_construction``; defaults 16 and 64): a denser graph finds more of the true
neighbours at the same search breadth, at the cost of a longer build and a larger index.
The index name carries the precision (``_half``) and any shape other than the default
(``_m32e128``), so a switch (``spaces.reindex_space``) builds the new index concurrently
beside the old one, which serves meanwhile, then drops the old one.

The index is pgvector's ``HnswIndex`` added by Django's schema editor (``concurrently``
outside a transaction, so other spaces' vectors can still be written meanwhile); only the
existence checks, the drops and the per-space advisory lock are SQL of our own.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from django.contrib.postgres.indexes import OpClass
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection
from django.db.models import Field, Q
from django.db.models.functions import Cast
from pgvector.django import HalfVectorField, HnswIndex, VectorField

from recommender.conf import conf
from recommender.models import (
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    EncoderSpace,
    IndexPrecision,
    ItemVector,
)

# pgvector's bounds on a graph's shape (hnsw.c: HNSW_MIN_M … HNSW_MAX_EF_CONSTRUCTION),
# checked here so a bad value is one clear line, not a failed build half-way.
M_RANGE = (2, 100)
EF_CONSTRUCTION_RANGE = (4, 1000)


@dataclass(frozen=True)
class Graph:
    """The shape of an HNSW graph: pgvector's ``m`` (links per node) and
    ``ef_construction`` (candidates kept while building)."""

    m: int = HNSW_M
    ef_construction: int = HNSW_EF_CONSTRUCTION

    @property
    def suffix(self) -> str:
        """What an index name adds for this shape: nothing for pgvector's defaults, so the
        indexes built before shapes were configurable keep their names."""
        if (self.m, self.ef_construction) == (HNSW_M, HNSW_EF_CONSTRUCTION):
            return ""
        return f"_m{self.m}e{self.ef_construction}"


def check_graph(m: int, ef_construction: int) -> Graph:
    """The graph of ``m`` and ``ef_construction`` if pgvector accepts them, else a
    ValidationError saying which bound is broken."""
    for name, value, (low, high) in (
        ("m", m, M_RANGE),
        ("ef_construction", ef_construction, EF_CONSTRUCTION_RANGE),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValidationError(
                f"HNSW {name} must be an integer from {low} to {high}, not {value!r}"
            )
    if ef_construction < 2 * m:
        raise ValidationError(
            f"HNSW ef_construction ({ef_construction}) must be at least 2 × m ({2 * m})"
        )
    return Graph(m, ef_construction)


def graph_of(space: EncoderSpace) -> Graph:
    """The graph shape the space's index has (or will be built with)."""
    return Graph(int(space.index_m), int(space.index_ef_construction))


@dataclass(frozen=True)
class Precision:
    """What one index precision means in SQL: the Django field of the cast, the cosine
    operator class and the index name's suffix."""

    field: type[Field]
    opclass: str
    suffix: str


PRECISIONS: dict[str, Precision] = {
    IndexPrecision.VECTOR: Precision(VectorField, "vector_cosine_ops", ""),
    IndexPrecision.HALFVEC: Precision(HalfVectorField, "halfvec_cosine_ops", "_half"),
}


def check_precision(precision: str) -> str:
    """``precision`` if it is one of ``IndexPrecision``, else a ValidationError naming them."""
    if precision not in PRECISIONS:
        raise ValidationError(
            f"unknown index precision {precision!r}: use " + " or ".join(IndexPrecision.values)
        )
    return precision


def _precision(space: EncoderSpace, precision: str | None) -> str:
    return check_precision(space.index_precision if precision is None else precision)


def _prefix(space: EncoderSpace) -> str:
    return f"itemvector_hnsw_space_{int(space.pk)}"


def index_name(
    space: EncoderSpace, precision: str | None = None, graph: Graph | None = None
) -> str:
    """The name of the space's index in ``precision`` with ``graph`` (defaults: the
    space's own): ``itemvector_hnsw_space_N``, ``_half`` for halfvec, and ``_mMeE`` for a
    graph that is not pgvector's default (so a new shape is built beside the old)."""
    graph = graph_of(space) if graph is None else graph
    precision_suffix = PRECISIONS[_precision(space, precision)].suffix
    return f"{_prefix(space)}{precision_suffix}{graph.suffix}"


def index_names(space: EncoderSpace) -> list[str]:
    """The names of the space's indexes that exist now: one, or two while a switch of
    precision or graph is under way (or was interrupted)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE indexname = %s OR indexname LIKE %s "
            "ORDER BY indexname",
            [_prefix(space), _prefix(space).replace("_", r"\_") + r"\_%"],
        )
        return [row[0] for row in cursor.fetchall()]


def vector_field(space: EncoderSpace, precision: str | None = None) -> Field:
    """The Django field a query casts to (``Cast(…, vector_field(space))``) for the space's
    index to be used: ``VectorField(dimensions=D)`` or ``HalfVectorField(dimensions=D)``."""
    return PRECISIONS[_precision(space, precision)].field(dimensions=int(space.dim))


def vector_cast(space: EncoderSpace) -> str:
    """The SQL type a query must cast to for the space's index to be used: ``vector(D)`` or
    ``halfvec(D)``, for both the column and the query vector (``%s::{vector_cast(space)}``)."""
    return f"{_precision(space, None)}({int(space.dim)})"


def hnsw_index(
    space: EncoderSpace, precision: str | None = None, graph: Graph | None = None
) -> HnswIndex:
    """The space's index as Django describes it (cosine distance over the cast vectors),
    in ``precision`` with ``graph`` (defaults: the space's own)."""
    precision = _precision(space, precision)
    graph = graph_of(space) if graph is None else graph
    return HnswIndex(
        OpClass(
            Cast("embedding", vector_field(space, precision)),
            name=PRECISIONS[precision].opclass,
        ),
        name=index_name(space, precision, graph),
        m=graph.m,
        ef_construction=graph.ef_construction,
        condition=Q(space_id=space.pk),
    )


def create_index(
    space: EncoderSpace, precision: str | None = None, graph: Graph | None = None
) -> None:
    """Create the space's HNSW index in ``precision`` with ``graph`` (defaults: the
    space's own) if it is missing.

    Outside a transaction it is built ``CONCURRENTLY``, so vectors of other spaces can be
    written meanwhile (a plain build locks the whole table against writes).
    """
    if index_exists(space, precision, graph):
        return
    index = hnsw_index(space, precision, graph)
    if not connection.in_atomic_block:
        try:
            with build_memory(local=False), connection.schema_editor(atomic=False) as editor:
                editor.add_index(ItemVector, index, concurrently=True)
        except DatabaseError:
            # A failed concurrent build leaves an invalid index behind: remove it.
            drop_named(index.name)
            raise
        return
    with build_memory(local=True), connection.cursor() as cursor:
        # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED; PostgreSQL refuses DDL on
        # a table with pending checks, so run them now and restore the default afterwards.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        with connection.schema_editor(atomic=False, collect_sql=False) as editor:
            editor.add_index(ItemVector, index)
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


@contextmanager
def build_memory(*, local: bool):
    """``maintenance_work_mem`` = ``RECOMMENDER_INDEX_BUILD_MEMORY`` around an index build
    (empty: the server's). pgvector builds the HNSW graph in that memory; once the graph
    outgrows it (PostgreSQL's default 64MB holds about 30,000 vectors of 384 d) the rest of
    the build runs many times slower. ``local``: for the current transaction only."""
    memory = str(conf.INDEX_BUILD_MEMORY).strip()
    if not memory:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('maintenance_work_mem', %s, %s)", [memory, local])
    try:
        yield
    finally:
        if not local:
            with connection.cursor() as cursor:
                cursor.execute("RESET maintenance_work_mem")


def drop_index(
    space: EncoderSpace, precision: str | None = None, graph: Graph | None = None
) -> None:
    """Drop the space's index in ``precision`` with ``graph`` (default: the space's
    graph); with neither given, whichever of its indexes exist (a switch interrupted
    half-way can leave two)."""
    if precision is None and graph is None:
        names = index_names(space)
    else:
        names = [index_name(space, precision, graph)]
    for name in names:
        drop_named(name)


def drop_named(name: str) -> None:
    # Django's schema editor drops only an index it is given as an object; these names are
    # our own, so plain SQL. Outside a transaction CONCURRENTLY, so searches that are using
    # the index (or the table) are not blocked behind an ACCESS EXCLUSIVE lock.
    with connection.cursor() as cursor:
        if not connection.in_atomic_block:
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {connection.ops.quote_name(name)}")
            return
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"DROP INDEX IF EXISTS {connection.ops.quote_name(name)}")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def index_exists(
    space: EncoderSpace, precision: str | None = None, graph: Graph | None = None
) -> bool:
    """Whether the space's index in ``precision`` (default: the space's own, the one its
    queries use) exists."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_indexes WHERE indexname = %s", [index_name(space, precision, graph)]
        )
        return cursor.fetchone() is not None


def index_valid(
    space: EncoderSpace, precision: str | None = None, graph: Graph | None = None
) -> bool:
    """Whether the space's index in ``precision`` exists and is usable (a concurrent build
    that was interrupted leaves an index PostgreSQL never uses)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s",
            [index_name(space, precision, graph)],
        )
        row = cursor.fetchone()
    return bool(row and row[0])


def index_size(
    space: EncoderSpace, precision: str | None = None, graph: Graph | None = None
) -> int:
    """The bytes of the space's index in ``precision`` (0 if it does not exist)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_relation_size(c.oid) FROM pg_class c WHERE c.relname = %s",
            [index_name(space, precision, graph)],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


@contextmanager
def space_lock(space: EncoderSpace):
    """A PostgreSQL advisory lock per space (session level, so it also holds outside a
    transaction, where the index is built concurrently); yields whether it was taken."""
    key = [0x5EC0, int(space.pk)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", key)
