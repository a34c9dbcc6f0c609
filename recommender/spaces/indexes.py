"""Each encoder space's HNSW index: a partial expression index over the space's own rows,
``USING hnsw ((embedding::vector(D)) vector_cosine_ops) WHERE space_id = N``, so spaces of
different dimensions share one table.

The index is pgvector's ``HnswIndex`` added by Django's schema editor (``concurrently``
outside a transaction, so other spaces' vectors can still be written meanwhile); only the
existence check and the per-space advisory lock are SQL of our own.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.contrib.postgres.indexes import OpClass
from django.db import DatabaseError, connection
from django.db.models import Q
from django.db.models.functions import Cast
from pgvector.django import HnswIndex, VectorField

from recommender.models import EncoderSpace, ItemVector

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64


def index_name(space: EncoderSpace) -> str:
    return f"itemvector_hnsw_space_{space.pk}"


def vector_cast(space: EncoderSpace) -> str:
    """The SQL type a query must cast to for the space's index to be used."""
    return f"vector({int(space.dim)})"


def hnsw_index(space: EncoderSpace) -> HnswIndex:
    """The space's index as Django describes it (cosine distance over the cast vectors)."""
    return HnswIndex(
        OpClass(
            Cast("embedding", VectorField(dimensions=space.dim)),
            name="vector_cosine_ops",
        ),
        name=index_name(space),
        m=HNSW_M,
        ef_construction=HNSW_EF_CONSTRUCTION,
        condition=Q(space_id=space.pk),
    )


def create_index(space: EncoderSpace) -> None:
    """Create the space's HNSW index if it is missing.

    Outside a transaction it is built ``CONCURRENTLY``, so vectors of other spaces can be
    written meanwhile (a plain build locks the whole table against writes).
    """
    if index_exists(space):
        return
    index = hnsw_index(space)
    if not connection.in_atomic_block:
        try:
            with connection.schema_editor(atomic=False) as editor:
                editor.add_index(ItemVector, index, concurrently=True)
        except DatabaseError:
            # A failed concurrent build leaves an invalid index behind: remove it.
            with connection.cursor() as cursor:
                cursor.execute(f"DROP INDEX IF EXISTS {index_name(space)}")
            raise
        return
    with connection.cursor() as cursor:
        # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED; PostgreSQL refuses DDL on
        # a table with pending checks, so run them now and restore the default afterwards.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        with connection.schema_editor(atomic=False, collect_sql=False) as editor:
            editor.add_index(ItemVector, index)
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def drop_index(space: EncoderSpace) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"DROP INDEX IF EXISTS {index_name(space)}")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def index_exists(space: EncoderSpace) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [index_name(space)])
        return cursor.fetchone() is not None


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
