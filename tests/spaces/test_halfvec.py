"""Half-precision HNSW indexes: a space indexed as ``halfvec``, searched through its index,
and switched between precisions without ever serving from no index."""

import subprocess
import sys

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from recommender import spaces
from recommender.models import EncoderSpace, Item, ItemVector
from recommender.serving import nearest
from recommender.spaces import vector_io
from recsite import testing
from tests.conftest import ROOT

DIM = 48


def space_indexes(space) -> dict[str, str]:
    """The space's HNSW indexes as PostgreSQL has them: name → definition."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE %s",
            [f"itemvector_hnsw_space_{space.pk}%"],
        )
        return dict(cursor.fetchall())


def store_vectors(space, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` items with random unit vectors in ``space``; their ids and the vectors."""
    rng = np.random.default_rng(seed)
    items = Item.objects.bulk_create(
        Item(external_id=f"h{n_}", title=f"item {n_}") for n_ in range(n)
    )
    hashes = dict(Item.objects.values_list("pk", "text_hash"))
    vectors = rng.standard_normal((n, space.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ItemVector.objects.bulk_create(
        ItemVector(space=space, item=item, embedding=vector, text_hash=hashes[item.pk])
        for item, vector in zip(items, vectors, strict=True)
    )
    return np.array([item.pk for item in items]), vectors


def plan_of(sql: str, params) -> str:
    """EXPLAIN of a statement as the planner sees it on a table too small to need an index
    (scans and sorts are off: the point is that the index's expression matches)."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE recommender_itemvector")
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_sort = off")
        return "\n".join(row[0] for row in vector_io.fetch("EXPLAIN " + sql, params))


@pytest.mark.django_db
def test_a_halfvec_space_is_indexed_with_the_halfvec_opclass(make_space):
    space = make_space("half", dim=DIM, index_precision="halfvec")
    indexes = space_indexes(space)
    assert list(indexes) == [f"itemvector_hnsw_space_{space.pk}_half"]
    definition = indexes[spaces.index_name(space)]
    assert f"halfvec({DIM})) halfvec_cosine_ops" in definition, definition
    assert f"WHERE (space_id = {space.pk})" in definition, definition
    assert spaces.vector_cast(space) == f"halfvec({DIM})"


@pytest.mark.django_db
def test_a_vector_space_keeps_its_vector_index(make_space):
    space = make_space("full", dim=DIM)
    assert space.index_precision == "vector"
    definition = space_indexes(space)[f"itemvector_hnsw_space_{space.pk}"]
    assert f"vector({DIM})) vector_cosine_ops" in definition, definition
    assert spaces.vector_cast(space) == f"vector({DIM})"


@pytest.mark.django_db
def test_the_orm_search_of_a_halfvec_space_uses_its_index(make_space):
    space = make_space("half", dim=DIM, index_precision="halfvec")
    _, vectors = store_vectors(space, 300)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE recommender_itemvector")
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_sort = off")
        plan = nearest.vector_query(space, vectors[0])[:10].explain()
    assert spaces.index_name(space) in plan, plan


@pytest.mark.django_db
def test_raw_sql_cast_with_vector_cast_uses_the_halfvec_index(make_space):
    # How nearest_rows casts: the column and the query parameter to vector_cast(space).
    space = make_space("half", dim=DIM, index_precision="halfvec")
    _, vectors = store_vectors(space, 300)
    cast = spaces.vector_cast(space)
    sql = (
        f"SELECT item_id FROM recommender_itemvector v WHERE v.space_id = %s "
        f"ORDER BY v.embedding::{cast} <=> %s::{cast} LIMIT 10"
    )
    plan = plan_of(sql, [space.pk, vector_io.Vector(vectors[0])])
    assert spaces.index_name(space) in plan, plan


@pytest.mark.django_db
def test_halfvec_search_agrees_with_exact_search(make_space):
    space = make_space("half", dim=DIM, index_precision="halfvec")
    ids, vectors = store_vectors(space, 400)
    queries = np.random.default_rng(1).standard_normal((20, DIM)).astype(np.float32)
    for query in queries:
        exact = 1.0 - vectors @ query / np.linalg.norm(query)
        order = np.argsort(exact)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL hnsw.ef_search = 100")
            found = list(nearest.vector_query(space, query).values_list("item_id", "distance")[:10])
        by_id = dict(zip(ids.tolist(), exact.tolist(), strict=True))
        # Half precision moves a distance by ~1e-3: an item may swap with a near tie at the
        # 10th place, never more than that.
        tenth = exact[order[9]]
        for item_id, distance in found:
            assert distance == pytest.approx(by_id[item_id], abs=2e-3)
            assert by_id[item_id] <= tenth + 2e-3
        assert found[0][0] == ids[order[0]]


@pytest.mark.django_db(transaction=True)
def test_reindex_switches_precision_leaving_one_index(make_space, capsys):
    space = make_space("switch", dim=DIM)
    store_vectors(space, 200)
    top = nearest.vector_query(space, np.ones(DIM)).values_list("item_id", flat=True)[:5]
    before = list(top)

    call_command("encoder_space", "reindex", "switch", "--precision", "halfvec")
    out = capsys.readouterr().out
    space.refresh_from_db()
    assert space.index_precision == "halfvec"
    assert list(space_indexes(space)) == [f"itemvector_hnsw_space_{space.pk}_half"]
    assert spaces.index_valid(space)
    assert f"building itemvector_hnsw_space_{space.pk}_half (halfvec, m 16," in out
    assert f"dropped itemvector_hnsw_space_{space.pk}\n" in out
    top = nearest.vector_query(space, np.ones(DIM)).values_list("item_id", flat=True)[:5]
    assert list(top)[0] == before[0]  # the same nearest item through the halfvec index

    call_command("encoder_space", "reindex", "switch", "--precision", "vector")
    space.refresh_from_db()
    assert space.index_precision == "vector"
    assert list(space_indexes(space)) == [f"itemvector_hnsw_space_{space.pk}"]
    assert spaces.index_valid(space)


@pytest.mark.django_db(transaction=True)
def test_the_old_index_serves_while_the_new_one_builds(make_space, monkeypatch):
    space = make_space("switch", dim=DIM)
    store_vectors(space, 50)
    build = spaces.create_index
    seen = []

    def watched_build(built_space, precision=None, graph=None):
        # At the start of the build: what serving reads and whether its index is there.
        serving = EncoderSpace.objects.get(pk=space.pk)
        seen.append((serving.index_precision, spaces.index_valid(serving)))
        build(built_space, precision, graph)

    monkeypatch.setattr(spaces, "create_index", watched_build)
    spaces.reindex_space(space, "halfvec")
    assert seen == [("vector", True)]
    assert EncoderSpace.objects.get(pk=space.pk).index_precision == "halfvec"


@pytest.mark.django_db
def test_reindex_completes_an_interrupted_switch(make_space):
    space = make_space("both", dim=DIM)
    spaces.create_index(space, "halfvec")  # as if a switch stopped before its drop
    assert len(space_indexes(space)) == 2
    done = spaces.reindex_space(space, "vector")
    assert (done.index, done.replaced) == (f"itemvector_hnsw_space_{space.pk}", None)
    assert list(space_indexes(space)) == [done.index]


@pytest.mark.django_db
def test_a_building_space_switches_now_and_is_indexed_when_ready(make_space):
    make_space("serving", dim=DIM)
    building = make_space("next", dim=DIM, activate=False)
    done = spaces.reindex_space(building, "halfvec")
    assert done.index is None and space_indexes(building) == {}
    store_vectors(building, 3)  # every active item has its vector: the build completes
    assert spaces.mark_ready_if_complete(building)
    assert list(space_indexes(building)) == [f"itemvector_hnsw_space_{building.pk}_half"]


@pytest.mark.django_db
def test_retiring_a_halfvec_space_drops_its_index(make_space):
    make_space("serving", dim=DIM)
    half = make_space("half", dim=DIM, activate=False, index_precision="halfvec")
    spaces.create_index(half)
    spaces.create_index(half, "vector")
    spaces.retire_space(half)
    assert space_indexes(half) == {}


@pytest.mark.django_db
def test_create_with_precision_and_list_shows_it(capsys):
    Item.objects.create(external_id="a", title="女士加长款保暖羽绒服", category="clothing")
    call_command(
        "encoder_space", "create", "h1", "--plugin", "hashing", "--option", "dim=24",
        "--precision", "halfvec", "--inline",
    )  # fmt: skip
    call_command("encoder_space", "activate", "h1")
    call_command("encoder_space", "list")
    out = capsys.readouterr().out
    assert "halfvec" in out.splitlines()[-1], out
    space = EncoderSpace.objects.get(name="h1")
    assert space.index_precision == "halfvec" and spaces.index_valid(space)
    with pytest.raises(CommandError, match="unknown index precision 'half'"):
        call_command("encoder_space", "create", "h2", "--plugin", "hashing", "--precision", "half")
    assert not EncoderSpace.objects.filter(name="h2").exists()


def manage(*args: str) -> subprocess.CompletedProcess:
    env = testing.environ(
        DJANGO_SETTINGS_MODULE="tests.settings",
        RECSITE_DATABASE_NAME=connection.settings_dict["NAME"],
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True, env=env
    )


@pytest.mark.django_db(transaction=True)
def test_reindex_errors_are_one_readable_line(make_space):
    space = make_space("known", dim=DIM)
    for args, message in (
        (("known", "--precision", "float16"), "unknown index precision 'float16': use "),
        (("nope", "--precision", "halfvec"), "no encoder space 'nope' (spaces: known)"),
    ):
        result = manage("encoder_space", "reindex", *args)
        assert result.returncode == 1
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0], result.stderr
    assert list(space_indexes(space)) == [f"itemvector_hnsw_space_{space.pk}"]
