"""Searching a small catalogue in process memory (RECOMMENDER_IN_PROCESS_SEARCH_ITEMS):
the same candidates, sources and features as the SQL search, nothing it may not
recommend, SQL for what narrows the items, and a snapshot read again when items change."""

from datetime import timedelta

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from recommender.ingest import events
from recommender.models import EndUser, Item, ItemVector
from recommender.serving import candidates, memory_search
from recommender.serving.filters import Filters
from recommender.serving.pipeline import RecommendationRequest


@pytest.fixture
def shop(space, make_items):
    """40 items with vectors: one inactive, one hidden, one whose window closed and one
    whose window has not opened; a user who viewed, liked and disliked some."""
    items = make_items(40)
    now = timezone.now()
    changes = {
        3: {"is_active": False},
        5: {"is_hidden": True},
        7: {"available_until": now - timedelta(days=1)},
        9: {"available_from": now + timedelta(days=1)},
    }
    for index, fields in changes.items():
        Item.objects.filter(pk=items[index].pk).update(**fields)
    # Random directions (no two items tie, so both searches cut their lists at the same
    # item); the inactive one keeps a vector, as an older catalogue would have left it.
    rng = np.random.default_rng(7)
    for item in items:
        ItemVector.objects.create(space=space, item=item, embedding=rng.normal(size=48))
    for index, kind in [(0, "view"), (11, "like"), (12, "view"), (13, "dislike")]:
        events.record_event(events.EventInput(user="u1", item=items[index].external_id, kind=kind))
    return items, EndUser.objects.get(external_id="u1")


# Features of the moment of the request (the hour of day, an item's age), which move
# between the two requests compared.
MOMENT = {"hour_sin", "hour_cos", "freshness"}


def _pool(request, settings, limit):
    settings.RECOMMENDER_IN_PROCESS_SEARCH_ITEMS = limit
    memory_search._snapshots.clear()
    pool = candidates.candidate_pool(request)
    return {
        c.item_id: (
            frozenset(c.sources),
            {
                **{n: v for n, v in c.features.items() if n not in MOMENT},
                # The stored vector (diversity re-ranking reads it), summed.
                **({"vector": float(np.sum(c.vector))} if c.vector is not None else {}),
            },
        )
        for c in pool.candidates
    }


def assert_same_pool(found, expected) -> None:
    """The same candidates, sources and features; the features to 1e-6 (PostgreSQL sums a
    cosine in float4, the snapshot in float8)."""
    assert found.keys() == expected.keys()
    for item_id, (sources, features) in found.items():
        assert sources == expected[item_id][0], item_id
        assert features == pytest.approx(expected[item_id][1], abs=1e-6), item_id


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"exclude_seen": False},
        {"query": "羽绒服 款3"},
        {"mode": "search", "query": "商品 款5"},
        {"diversity": 0.3, "exclude": frozenset()},
    ],
    ids=["profile", "seen-allowed", "intent", "search", "diversity"],
)
def test_the_memory_search_gives_the_sql_searchs_candidates(shop, settings, fields):
    items, user = shop
    request = RecommendationRequest(user=user, k=5, explain=False, per_source=12, **fields)
    in_sql = _pool(request, settings, 0)
    in_memory = _pool(request, settings, 2000)
    assert memory_search._snapshots, "the search did not run in memory"
    assert_same_pool(in_memory, in_sql)
    with_vectors = {item for item, (_, features) in in_memory.items() if "vector" in features}
    assert bool(with_vectors) == (fields.get("diversity", 0) > 0)
    vector_sources = {"history", "recent", "query"}
    assert any(sources & vector_sources for sources, _ in in_memory.values())
    never = {items[3].pk, items[7].pk, items[9].pk, items[13].pk}  # off, closed, not yet, disliked
    if fields.get("mode") != "search":
        never.add(items[5].pk)  # hidden: found by search only
    assert not never & set(in_memory)


def test_what_narrows_the_items_or_replays_the_past_is_searched_in_sql(shop, space, settings):
    settings.RECOMMENDER_IN_PROCESS_SEARCH_ITEMS = 2000
    assert memory_search.snapshot_for(space, Filters(), None) is not None
    assert memory_search.snapshot_for(space, Filters(category="c1"), None) is None
    assert memory_search.snapshot_for(space, Filters(rules=(("TRUE", ()),)), None) is None
    assert memory_search.snapshot_for(space, Filters(), timezone.now()) is None
    settings.RECOMMENDER_IN_PROCESS_SEARCH_ITEMS = 39  # the shop has 40 vectors
    memory_search._snapshots.clear()
    assert memory_search.snapshot_for(space, Filters(), None) is None
    settings.RECOMMENDER_IN_PROCESS_SEARCH_ITEMS = 0
    assert memory_search.snapshot_for(space, Filters(), None) is None


def test_a_new_item_is_found_at_once_and_one_switched_off_unsignalled_is_never_served(
    shop, space, settings
):
    items, user = shop
    settings.RECOMMENDER_IN_PROCESS_SEARCH_ITEMS = 2000
    liked = ItemVector.objects.get(space=space, item=items[11]).embedding
    request = RecommendationRequest(user=user, k=5, explain=False, per_source=8)
    before = {c.item_id for c in candidates.candidate_pool(request).candidates}
    # A new item pointing where the user's taste does: saved and embedded, it is a
    # neighbour in the next request (the snapshot is read again).
    new = Item.objects.create(external_id="new", title="新品")
    ItemVector.objects.create(space=space, item=new, embedding=np.asarray(liked))
    pool = candidates.candidate_pool(request)
    assert new.pk not in before
    assert {"history", "recent"} & next(c for c in pool.candidates if c.item_id == new.pk).sources
    # Switched off by a bulk update (no signal): the snapshot still offers it, the
    # statement that checks every candidate leaves it out.
    Item.objects.filter(pk=new.pk).update(is_active=False)
    assert new.pk in memory_search.snapshot_for(space, Filters(), None).ids
    assert new.pk not in {c.item_id for c in candidates.candidate_pool(request).candidates}


def test_ties_are_broken_by_id_and_zero_vectors_are_never_neighbours():
    snapshot = memory_search.Snapshot(
        version=None,
        loaded_at=0.0,
        local=0,
        ids=np.array([9, 4, 7, 2], dtype=np.int64),
        unit=np.array([[1, 0], [1, 0], [0, 1], [0, 0]], dtype=np.float32),
        active=np.ones(4, bool),
        hidden=np.zeros(4, bool),
        opens=np.full(4, -np.inf),
        closes=np.full(4, np.inf),
        pointing=np.array([True, True, True, False]),
    )
    search = memory_search.Search(np.array([2.0, 0.0]), 4)
    (found,) = snapshot.search([search], set(), recommendable=True, now=timezone.now())
    assert found == [4, 9, 7]
    (found,) = snapshot.search([search], {4}, recommendable=True, now=timezone.now())
    assert found == [9, 7]


def _listed_and_statements(settings, limit, serve):
    """``serve()``'s (item, score, reason) and the statements it ran, with the in-memory
    search limited to ``limit`` vectors (its snapshot read by a first, untimed call)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.RECOMMENDER_IN_PROCESS_SEARCH_ITEMS = limit
    memory_search._snapshots.clear()
    serve()
    with CaptureQueriesContext(connection) as captured:
        results = serve()
    # Scores to 3 decimals: features of the moment (the hour of day) move between calls.
    listed = [(r.item.pk, round(r.score, 3), r.reason and r.reason.text) for r in results]
    return listed, [q["sql"] for q in captured]


def test_an_explained_list_is_the_same_and_reads_no_vector_in_sql(shop, settings):
    from recommender.serving import pipeline

    items, user = shop

    def served():
        return pipeline.recommend(RecommendationRequest(user=user, k=6))

    in_sql, sql_statements = _listed_and_statements(settings, 0, served)
    in_memory, memory_statements = _listed_and_statements(settings, 2000, served)
    assert in_memory == in_sql and len(in_memory) == 6
    assert any("hnsw.ef_search" in sql for sql in sql_statements)
    assert any(sql.startswith("SELECT item_id, embedding FROM") for sql in sql_statements)
    recent_read = "b.occurred_at, v.embedding FROM"  # ``recent_items``' own statement
    assert any(recent_read in sql for sql in sql_statements)
    vector_reads = [
        sql
        for sql in memory_statements
        if "hnsw.ef_search" in sql
        or sql.startswith("SELECT item_id, embedding FROM")
        or recent_read in sql
    ]
    assert not vector_reads


def test_the_recent_items_come_from_the_history_and_the_snapshot_as_from_sql(shop, space, settings):
    items, user = shop
    settings.RECOMMENDER_IN_PROCESS_SEARCH_ITEMS = 2000
    # More events, one on an item whose vector is gone (both reads skip it).
    for index, kind in [(14, "like"), (15, "cart"), (16, "view"), (17, "like"), (12, "like")]:
        events.record_event(events.EventInput(user="u1", item=items[index].external_id, kind=kind))
    ItemVector.objects.filter(space=space, item=items[16]).delete()
    snapshot = memory_search.snapshot_for(space, Filters(), None)
    history = candidates.History.load(user, None)
    for interests in (0, 3):
        in_sql = candidates.recent_items(user.pk, space, max_interests=interests)
        in_memory = candidates.recent_in_memory(history, snapshot, interests)
        np.testing.assert_allclose(in_memory.vector, in_sql.vector, rtol=1e-6)
        assert len(in_memory.interests) == len(in_sql.interests) > (0 if interests else -1)
        for (vector, share), (expected, expected_share) in zip(
            in_memory.interests, in_sql.interests, strict=True
        ):
            np.testing.assert_allclose(vector, expected, rtol=1e-6)
            assert share == pytest.approx(expected_share)
    # A history cut at its limit may not hold what the SQL reads: that one is read.
    cut = candidates.History(history.recent[:2], history.seen, history.disliked, truncated=True)
    assert candidates.recent_in_memory(cut, snapshot, 3) is None
    assert candidates.recent_in_memory(cut, snapshot, 0) is None


def test_changes_made_elsewhere_are_read_again_at_most_once_a_reload_interval(
    shop, space, settings, monkeypatch
):
    from recommender import sharedcache, spaces

    settings.RECOMMENDER_IN_PROCESS_SEARCH_ITEMS = 2000
    first = memory_search.snapshot_for(space, Filters(), None)
    # Another process saved an item: the version moves, this process's count does not.
    sharedcache.set(spaces.CATALOGUE_VERSION_KEY, "elsewhere", None)
    assert memory_search.snapshot_for(space, Filters(), None) is first
    monkeypatch.setattr(memory_search, "RELOAD_EVERY", 0.0)
    assert memory_search.snapshot_for(space, Filters(), None) is not first
    # This process's own change counts at once.
    monkeypatch.setattr(memory_search, "RELOAD_EVERY", 3600.0)
    second = memory_search.snapshot_for(space, Filters(), None)
    spaces.catalogue_changed()
    assert memory_search.snapshot_for(space, Filters(), None) is not second


def test_similar_items_are_the_same_in_memory_and_never_an_item_it_may_not_show(
    shop, space, settings
):
    from recommender.serving import pipeline

    items, _ = shop

    def similar():
        return pipeline.similar_items(items[20], 8)

    in_sql, sql_statements = _listed_and_statements(settings, 0, similar)
    in_memory, memory_statements = _listed_and_statements(settings, 2000, similar)
    assert in_memory == in_sql and len(in_memory) == 8
    assert any("hnsw.ef_search" in sql for sql in sql_statements)
    assert not any("hnsw.ef_search" in sql for sql in memory_statements)
    never = {items[i].pk for i in (3, 5, 7, 9, 20)}  # off, hidden, closed, not yet, itself
    assert not never & {pk for pk, _, _ in in_memory}
    # Switched off without a signal: offered by the snapshot, left out by the check.
    shown = pipeline.similar_items(items[20], 8)
    nearest_pk = next(r.item.pk for r in shown if "similar_item" in r.sources)
    Item.objects.filter(pk=nearest_pk).update(is_active=False)
    snapshot = memory_search.snapshot_for(space, Filters(), None)
    vector = snapshot.vectors([items[20].pk])[items[20].pk]
    offered = snapshot.nearest(vector, 24, {items[20].pk}, recommendable=True, now=timezone.now())
    assert nearest_pk in {item_id for item_id, _ in offered}
    assert nearest_pk not in {r.item.pk for r in pipeline.similar_items(items[20], 8)}


def test_a_shown_items_row_is_kept_until_the_catalogue_changes(shop, settings):
    from recommender.serving import pipeline

    items, user = shop
    settings.RECOMMENDER_IN_PROCESS_SEARCH_ITEMS = 2000

    def titles():
        results = pipeline.recommend(RecommendationRequest(user=user, k=6))
        return {r.item.pk: r.item.title for r in results}

    first = titles()
    with CaptureQueriesContext(connection) as captured:
        assert titles() == first
    row_reads = [q["sql"] for q in captured if 'recommender_item."title"' in q["sql"]]
    assert not row_reads, "the rows of a list already shown were read again"
    # Saved (here, so at once; elsewhere within a second): the next list shows the change.
    shown = Item.objects.get(pk=next(iter(first)))
    shown.title = "改过的标题"
    shown.save()
    assert titles()[shown.pk] == "改过的标题"


def test_a_new_catalogue_version_is_set_now_and_again_after_the_commit(
    db, django_capture_on_commit_callbacks
):
    from recommender import sharedcache, spaces

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        spaces.catalogue_changed()
        now = sharedcache.get(spaces.CATALOGUE_VERSION_KEY)
        assert now is not None
    # Another process may have read the old rows between the two: they must not stay.
    assert len(callbacks) == 1
    assert sharedcache.get(spaces.CATALOGUE_VERSION_KEY) not in (None, now)
