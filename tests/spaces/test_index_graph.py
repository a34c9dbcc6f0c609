"""The HNSW graph's shape per space (pgvector's ``m`` and ``ef_construction``): created
with it, rebuilt in place with another (the old index serving until the new one is
valid), errors as one readable line, and only the space's own indexes touched."""

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from recommender import spaces
from recommender.models import EncoderSpace, Item
from recommender.serving import nearest
from tests.spaces.test_halfvec import DIM, manage, space_indexes, store_vectors


def options_of(definition: str) -> str:
    """The ``WITH (…)`` part of an index definition: its graph options."""
    return definition.partition(" WITH (")[2].partition(")")[0]


def nearest_ids(space, n: int = 5) -> list[int]:
    query = nearest.vector_query(space, np.ones(DIM)).values_list("item_id", flat=True)
    return list(query[:n])


@pytest.mark.django_db
def test_a_space_is_created_with_its_graph(capsys):
    Item.objects.create(external_id="a", title="女士加长款保暖羽绒服", category="clothing")
    call_command(
        "encoder_space", "create", "dense", "--plugin", "hashing", "--option", "dim=24",
        "--m", "32", "--ef-construction", "128", "--inline",
    )  # fmt: skip
    call_command("encoder_space", "activate", "dense")
    space = EncoderSpace.objects.get(name="dense")
    assert (space.index_m, space.index_ef_construction) == (32, 128)
    indexes = space_indexes(space)
    assert list(indexes) == [f"itemvector_hnsw_space_{space.pk}_m32e128"]
    assert options_of(indexes[spaces.index_name(space)]) == "m='32', ef_construction='128'"
    call_command("encoder_space", "list")
    assert "m32/ef128" in capsys.readouterr().out.splitlines()[-1]


@pytest.mark.django_db
def test_the_default_graph_keeps_the_names_indexes_had_before(make_space):
    space = make_space("plain", dim=DIM)
    indexes = space_indexes(space)
    assert list(indexes) == [f"itemvector_hnsw_space_{space.pk}"]
    assert options_of(indexes[f"itemvector_hnsw_space_{space.pk}"]) == (
        "m='16', ef_construction='64'"
    )


@pytest.mark.django_db(transaction=True)
def test_reindex_rebuilds_the_graph_in_place(make_space, capsys):
    space = make_space("graph", dim=DIM)
    store_vectors(space, 300)
    before = nearest_ids(space)

    call_command("encoder_space", "reindex", "graph", "--m", "24", "--ef-construction", "96")
    out = capsys.readouterr().out
    space.refresh_from_db()
    name = f"itemvector_hnsw_space_{space.pk}_m24e96"
    assert (space.index_precision, space.index_m, space.index_ef_construction) == (
        "vector",
        24,
        96,
    )
    indexes = space_indexes(space)
    assert list(indexes) == [name]
    assert options_of(indexes[name]) == "m='24', ef_construction='96'"
    assert spaces.index_valid(space)
    assert f"building {name} (vector, m 24, ef_construction 96)" in out
    assert f"dropped itemvector_hnsw_space_{space.pk}\n" in out
    assert nearest_ids(space)[0] == before[0]  # the new graph serves the same nearest item

    # Only --m given: ef_construction stays; then precision and graph in one rebuild.
    call_command("encoder_space", "reindex", "graph", "--m", "20")
    space.refresh_from_db()
    assert (space.index_m, space.index_ef_construction) == (20, 96)
    assert list(space_indexes(space)) == [f"itemvector_hnsw_space_{space.pk}_m20e96"]
    call_command(
        "encoder_space", "reindex", "graph", "--precision", "halfvec",
        "--m", "16", "--ef-construction", "64",
    )  # fmt: skip
    space.refresh_from_db()
    assert (space.index_precision, space.index_m, space.index_ef_construction) == (
        "halfvec",
        16,
        64,
    )
    assert list(space_indexes(space)) == [f"itemvector_hnsw_space_{space.pk}_half"]
    assert nearest_ids(space)[0] == before[0]


@pytest.mark.django_db(transaction=True)
def test_the_old_graph_serves_while_the_new_one_builds(make_space, monkeypatch):
    space = make_space("graph", dim=DIM)
    store_vectors(space, 50)
    build = spaces.create_index
    seen = []

    def watched_build(built_space, precision=None, graph=None):
        serving = EncoderSpace.objects.get(pk=space.pk)
        seen.append((serving.index_m, spaces.index_valid(serving), sorted(space_indexes(serving))))
        build(built_space, precision, graph)

    monkeypatch.setattr(spaces, "create_index", watched_build)
    spaces.reindex_space(space, graph=spaces.Graph(24, 96))
    assert seen == [(16, True, [f"itemvector_hnsw_space_{space.pk}"])]
    assert EncoderSpace.objects.get(pk=space.pk).index_m == 24


@pytest.mark.django_db
def test_a_graph_switch_left_half_way_is_completed(make_space):
    space = make_space("both", dim=DIM)
    spaces.create_index(space, graph=spaces.Graph(24, 96))  # built, not yet switched to
    assert len(space_indexes(space)) == 2
    done = spaces.reindex_space(space)  # again, with what the space says: keeps its own
    assert (done.index, done.replaced) == (f"itemvector_hnsw_space_{space.pk}", None)
    assert list(space_indexes(space)) == [done.index]


@pytest.mark.django_db
def test_only_the_spaces_own_indexes_are_touched(make_space):
    space = make_space("own", dim=DIM)
    spaces.create_index(space, graph=spaces.Graph(24, 96))
    # An index whose name merely starts like the space's (space 1 and space 12, …).
    lookalike = f"itemvector_hnsw_space_{space.pk}7"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE INDEX {lookalike} ON recommender_item (id)")
    assert spaces.index_names(space) == [
        f"itemvector_hnsw_space_{space.pk}",
        f"itemvector_hnsw_space_{space.pk}_m24e96",
    ]
    make_space("other", dim=DIM)  # activating another lets this one retire
    spaces.retire_space(EncoderSpace.objects.get(pk=space.pk))
    assert spaces.index_names(space) == []
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [lookalike])
        assert cursor.fetchone() is not None


@pytest.mark.django_db
def test_a_bad_graph_is_refused_before_anything_changes():
    for m, ef, message in (
        (1, 64, "HNSW m must be an integer from 2 to 100, not 1"),
        (101, 300, "HNSW m must be an integer from 2 to 100, not 101"),
        (16, 1001, "HNSW ef_construction must be an integer from 4 to 1000, not 1001"),
        (40, 64, "HNSW ef_construction (64) must be at least 2 × m (80)"),
    ):
        with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
            call_command(
                "encoder_space", "create", "bad", "--plugin", "hashing",
                "--m", str(m), "--ef-construction", str(ef),
            )  # fmt: skip
    assert not EncoderSpace.objects.filter(name="bad").exists()


@pytest.mark.django_db(transaction=True)
def test_reindex_graph_errors_are_one_readable_line(make_space):
    space = make_space("known", dim=DIM)
    for args, message in (
        (("--m", "0"), "HNSW m must be an integer from 2 to 100, not 0"),
        (("--m", "48"), "HNSW ef_construction (64) must be at least 2 × m (96)"),
        (("--ef-construction", "abc"), "argument --ef-construction: invalid int value: 'abc'"),
    ):
        result = manage("encoder_space", "reindex", "known", *args)
        assert result.returncode != 0
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert message in lines[-1], result.stderr
        if "invalid int" not in message:
            assert len(lines) == 1, result.stderr
    space.refresh_from_db()
    assert (space.index_m, space.index_ef_construction) == (16, 64)
    assert list(space_indexes(space)) == [f"itemvector_hnsw_space_{space.pk}"]
