"""Large spaces: HNSW builds run with RECOMMENDER_INDEX_BUILD_MEMORY as maintenance_work_mem
and leave the connection's own setting as it was; the items a space still needs are found
with one anti-join."""

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


def test_items_needing_vectors_are_the_missing_and_the_stale_active_ones(
    make_space, make_items, settings
):
    from recommender import spaces
    from recommender.models import Item
    from recommender.spaces import embedding

    settings.RECOMMENDER_EMBED_ON_SAVE = False
    space = make_space("needs", dim=8)
    fresh, stale, missing, inactive = make_items(4)
    embedding.embed_items(space, [fresh.pk, stale.pk])
    Item.objects.filter(pk=stale.pk).update(title="改过的标题")  # its vector is now stale
    Item.objects.filter(pk=inactive.pk).update(is_active=False)
    assert list(spaces.items_needing_vectors(space)) == [stale.pk, missing.pk]
