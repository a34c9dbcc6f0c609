"""Vectors in pgvector's binary format: what serving reads and what embedding writes
equals what the ORM reads, and a binary fetch is listed with the ORM's queries."""

import numpy as np
from django.db import connection

from recommender.models import Item, ItemVector
from recommender.serving import profiles
from recommender.spaces import embedding, vector_io


def test_binary_vectors_equal_what_the_orm_reads(space, make_items):
    items = make_items(5)
    embedding.embed_items(space, [item.pk for item in items])
    through_orm = {
        item_id: np.asarray(vector, dtype=np.float32)
        for item_id, vector in ItemVector.objects.filter(space=space).values_list(
            "item_id", "embedding"
        )
    }
    binary = profiles.item_vectors(space, [item.pk for item in items])
    assert binary.keys() == through_orm.keys()
    for item_id, vector in binary.items():
        assert vector.dtype == np.float32 and vector.shape == (48,)
        np.testing.assert_array_equal(vector, through_orm[item_id])
    assert vector_io.decode(None) is None


def test_binary_fetches_are_listed_with_the_orm_queries_under_debug(space, settings, make_items):
    (item,) = make_items(1)
    embedding.embed_items(space, [item.pk])
    connection.force_debug_cursor = True
    try:
        before = len(connection.queries)
        profiles.item_vectors(space, [item.pk])
        assert len(connection.queries) == before + 1
        assert "embedding" in connection.queries[-1]["sql"]
    finally:
        connection.force_debug_cursor = False


def test_vectors_written_in_binary_read_back_exactly_and_upsert(space, make_items):
    items = make_items(3)
    vectors = np.random.default_rng(0).normal(size=(3, 48)).astype(np.float32)
    vectors[1] = 0.0  # an empty text's vector is not stored
    embedding.store_vectors(space, items, vectors)
    stored = dict(ItemVector.objects.filter(space=space).values_list("item_id", "embedding"))
    assert set(stored) == {items[0].pk, items[2].pk}
    np.testing.assert_array_equal(np.asarray(stored[items[0].pk], np.float32), vectors[0])
    np.testing.assert_array_equal(np.asarray(stored[items[2].pk], np.float32), vectors[2])
    embedding.store_vectors(space, items[:1], -vectors[:1])  # the same item again: updated
    again = ItemVector.objects.get(space=space, item=items[0])
    np.testing.assert_array_equal(np.asarray(again.embedding, np.float32), -vectors[0])
    assert again.text_hash == Item.objects.get(pk=items[0].pk).text_hash
    assert ItemVector.objects.filter(space=space).count() == 2
