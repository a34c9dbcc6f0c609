"""HNSW builds run with RECOMMENDER_INDEX_BUILD_MEMORY as maintenance_work_mem, and leave
the connection's own setting as it was."""

import pytest
from django.db import connection

from recommender.spaces import indexes


def _shown() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW maintenance_work_mem")
        return cursor.fetchone()[0]


@pytest.mark.parametrize("local", [True, False])
def test_the_build_memory_holds_during_the_build_only(db, settings, local):
    before = _shown()
    settings.RECOMMENDER_INDEX_BUILD_MEMORY = "96MB"
    with indexes.build_memory(local=local):
        assert _shown() == "96MB"
    if not local:
        assert _shown() == before


def test_an_empty_setting_keeps_the_servers(db, settings):
    before = _shown()
    settings.RECOMMENDER_INDEX_BUILD_MEMORY = ""
    with indexes.build_memory(local=False):
        assert _shown() == before


def test_an_index_is_built_under_it(make_space, make_items, settings, monkeypatch):
    settings.RECOMMENDER_INDEX_BUILD_MEMORY = "80MB"
    seen = []
    original = connection.schema_editor

    def editor(*args, **kwargs):
        seen.append(_shown())
        return original(*args, **kwargs)

    monkeypatch.setattr(connection, "schema_editor", editor)
    space = make_space("memory", dim=8)
    indexes.drop_index(space)
    indexes.create_index(space)
    assert indexes.index_exists(space) and "80MB" in seen
