"""Each encoder space's HNSW index: a partial expression index over the space's own rows,
``USING hnsw ((embedding::vector(D)) vector_cosine_ops) WHERE space_id = N``, so spaces of
different dimensions share one table.

A space whose ``index_precision`` is ``halfvec`` (pgvector >= 0.7) indexes
``embedding::halfvec(D)`` with ``halfvec_cosine_ops`` instead: the stored vectors stay full
precision, only the graph holds half-precision copies (half the size). The two precisions'
indexes have different names, so a switch (``spaces.reindex_space``) builds the new one
concurrently while the old one still serves, then drops the old one.

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
from recommender.models import EncoderSpace, IndexPrecision, ItemVector

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64


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


def index_name(space: EncoderSpace, precision: str | None = None) -> str:
    """The name of the space's index in ``precision`` (default: the space's own)."""
    return f"itemvector_hnsw_space_{space.pk}{PRECISIONS[_precision(space, precision)].suffix}"


def index_names(space: EncoderSpace) -> list[str]:
    """The names the space's index may have, one per precision."""
    return [index_name(space, precision) for precision in PRECISIONS]


def vector_field(space: EncoderSpace, precision: str | None = None) -> Field:
    """The Django field a query casts to (``Cast(…, vector_field(space))``) for the space's
    index to be used: ``VectorField(dimensions=D)`` or ``HalfVectorField(dimensions=D)``."""
    return PRECISIONS[_precision(space, precision)].field(dimensions=int(space.dim))


def vector_cast(space: EncoderSpace) -> str:
    """The SQL type a query must cast to for the space's index to be used: ``vector(D)`` or
    ``halfvec(D)``, for both the column and the query vector (``%s::{vector_cast(space)}``)."""
    return f"{_precision(space, None)}({int(space.dim)})"


def hnsw_index(space: EncoderSpace, precision: str | None = None) -> HnswIndex:
    """The space's index as Django describes it (cosine distance over the cast vectors)."""
    precision = _precision(space, precision)
    return HnswIndex(
        OpClass(
            Cast("embedding", vector_field(space, precision)),
            name=PRECISIONS[precision].opclass,
        ),
        name=index_name(space, precision),
        m=HNSW_M,
        ef_construction=HNSW_EF_CONSTRUCTION,
        condition=Q(space_id=space.pk),
    )


def create_index(space: EncoderSpace, precision: str | None = None) -> None:
    """Create the space's HNSW index in ``precision`` (default: the space's own) if it is
    missing.

    Outside a transaction it is built ``CONCURRENTLY``, so vectors of other spaces can be
    written meanwhile (a plain build locks the whole table against writes).
    """
    if index_exists(space, precision):
        return
    index = hnsw_index(space, precision)
    if not connection.in_atomic_block:
        try:
            with build_memory(local=False), connection.schema_editor(atomic=False) as editor:
                editor.add_index(ItemVector, index, concurrently=True)
        except DatabaseError:
            # A failed concurrent build leaves an invalid index behind: remove it.
            _drop(index.name)
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


def drop_index(space: EncoderSpace, precision: str | None = None) -> None:
    """Drop the space's index in ``precision``; without one, whichever of its indexes exist
    (a switch of precision interrupted half-way can leave both)."""
    names = index_names(space) if precision is None else [index_name(space, precision)]
    for name in names:
        _drop(name)


def _drop(name: str) -> None:
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


def index_exists(space: EncoderSpace, precision: str | None = None) -> bool:
    """Whether the space's index in ``precision`` (default: the space's own, the one its
    queries use) exists."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_indexes WHERE indexname = %s", [index_name(space, precision)]
        )
        return cursor.fetchone() is not None


def index_valid(space: EncoderSpace, precision: str | None = None) -> bool:
    """Whether the space's index in ``precision`` exists and is usable (a concurrent build
    that was interrupted leaves an index PostgreSQL never uses)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s",
            [index_name(space, precision)],
        )
        row = cursor.fetchone()
    return bool(row and row[0])


def index_size(space: EncoderSpace, precision: str | None = None) -> int:
    """The bytes of the space's index in ``precision`` (0 if it does not exist)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_relation_size(c.oid) FROM pg_class c WHERE c.relname = %s",
            [index_name(space, precision)],
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
