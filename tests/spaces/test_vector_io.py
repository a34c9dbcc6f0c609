"""Vectors in pgvector's binary format: what serving reads and what embedding writes
equals what the ORM reads, and a binary fetch is listed with the ORM's queries."""

import numpy as np
import pytest
from django.db import connection, connections

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


def _list(api, user="u1"):
    """A list as a request starts it: Django's request_started work first (the test
    client skips it), which makes the connection's health check due."""
    from django.db import close_old_connections

    close_old_connections()
    return api.get(f"/api/v1/users/{user}/recommendations", {"k": 3})


@pytest.fixture
def committed_user(transactional_db, space, make_items):
    from recommender.ingest import events

    items = make_items(6)
    embedding.embed_items(space, [item.pk for item in items])
    events.record_event(events.EventInput(user="u1", item=items[0].external_id, kind="view"))
    return items


def test_a_requests_first_read_stands_in_for_the_health_check(committed_user, monkeypatch):
    from rest_framework.test import APIClient

    api = APIClient()
    assert _list(api).status_code == 200
    checks = []
    wrapper = type(connections["default"])
    is_usable = wrapper.is_usable
    monkeypatch.setattr(wrapper, "is_usable", lambda self: checks.append(1) or is_usable(self))
    answer = _list(api)
    assert answer.status_code == 200 and len(answer.json()["items"]) == 3
    assert checks == []  # no SELECT 1: the user's read was the check


def test_a_connection_lost_between_requests_is_replaced_by_the_first_read(committed_user):
    import psycopg
    from rest_framework.test import APIClient

    api = APIClient()
    first = _list(api)
    assert first.status_code == 200
    lost = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [lost])
    again = _list(api)
    assert again.status_code == 200, again.content
    assert [i["id"] for i in again.json()["items"]] == [i["id"] for i in first.json()["items"]]
    assert connection.connection.info.backend_pid != lost


def test_a_failing_statement_on_a_sound_connection_is_not_run_twice(committed_user, monkeypatch):
    from django.db import DatabaseError, close_old_connections

    connection.ensure_connection()
    close_old_connections()  # the health check is due: the next read stands in for it
    runs = []
    original = vector_io._fetch

    def counted(*args, **kwargs):
        runs.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(vector_io, "_fetch", counted)
    with pytest.raises(DatabaseError):
        vector_io.fetch("SELECT 1 / 0")
    assert runs == [1] and not connection.connection.broken
