"""Item vectors live in the row (migration 0020, STORAGE MAIN): a 512-d or 768-d vector is
not sent to the TOAST table, where every read costs a TOAST index lookup; existing
out-of-line vectors are moved in by the migration on a small table."""

import importlib

import numpy as np
import pytest
from django.db import connection

from recommender.models import ItemVector

migration = importlib.import_module("recommender.migrations.0020_vectors_stored_inline")
DIM = 600  # over the 508 dimensions that fit PostgreSQL's 2 KB TOAST threshold


def _storage() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attstorage FROM pg_attribute WHERE attrelid = "
            "'recommender_itemvector'::regclass AND attname = 'embedding'"
        )
        return cursor.fetchone()[0]


def _toast_bytes() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_relation_size(reltoastrelid) FROM pg_class "
            "WHERE relname = 'recommender_itemvector'"
        )
        return cursor.fetchone()[0]


def _store(space, items) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(7)
    vectors = {item.pk: rng.normal(size=DIM).astype(np.float32) for item in items}
    ItemVector.objects.bulk_create(
        ItemVector(item=item, space=space, embedding=vectors[item.pk]) for item in items
    )
    return vectors


def _stored() -> dict[int, np.ndarray]:
    return {
        row.item_id: np.asarray(row.embedding, dtype=np.float32) for row in ItemVector.objects.all()
    }


@pytest.mark.parametrize("storage", ["MAIN", "EXTERNAL"])
def test_large_vectors_stay_out_of_the_toast_table_only_with_main(
    make_space, make_items, settings, storage
):
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    assert _storage() == "m"
    space = make_space("wide", dim=DIM)
    with connection.cursor() as cursor:  # rolled back with the test's transaction
        cursor.execute(
            f"ALTER TABLE recommender_itemvector ALTER COLUMN embedding SET STORAGE {storage}"
        )
    before = _toast_bytes()
    _store(space, make_items(40))
    grew = _toast_bytes() - before
    assert (grew == 0) if storage == "MAIN" else (grew >= 40 * DIM * 4)


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_existing_vectors_into_the_row(make_space, make_items, settings):
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    space = make_space("wide", dim=DIM)
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE recommender_itemvector ALTER COLUMN embedding SET STORAGE EXTERNAL"
        )
    vectors = _store(space, make_items(30))
    assert _toast_bytes() >= 30 * DIM * 4

    # A table over the size limit: storage set, the rewrite left for a maintenance window.
    message = migration.inline_vectors(connection, max_rows=10)
    assert "30 existing ones stay out of line" in message and "VACUUM FULL" in message
    assert _storage() == "m" and _toast_bytes() >= 30 * DIM * 4

    message = migration.inline_vectors(connection)
    assert message == "vectors stored in the row; 30 existing ones moved into it"
    assert _toast_bytes() == 0
    stored = _stored()
    assert stored.keys() == vectors.keys()
    assert all(np.array_equal(stored[pk], vectors[pk]) for pk in vectors)


def test_narrow_vectors_need_no_rewrite(make_space, make_items, settings):
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    space = make_space("narrow", dim=8)
    ItemVector.objects.create(item=make_items(1)[0], space=space, embedding=np.ones(8))
    with connection.cursor() as cursor:  # deferred foreign-key checks block an ALTER
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert migration.inline_vectors(connection) == "vectors stored in the row from now on"
