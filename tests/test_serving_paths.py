"""The fast paths of serving: binary vector reads, the cached active space, co-occurrence
summed in SQL, popularity heads, and event inserts that look the user up themselves."""

import numpy as np
import pytest
from django.db import connection

from recommender import spaces
from recommender.ingest import events
from recommender.models import (
    Behaviour,
    EncoderSpace,
    EndUser,
    Item,
    ItemCooccurrence,
    ItemVector,
    UserProfile,
)
from recommender.serving import candidates, cooccurrence, filters, nearest, popularity, profiles
from recommender.spaces import embedding, vector_io


@pytest.fixture
def space(db, settings):
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    return spaces.create_space("fast", "hashing", {"dim": 48}, activate=True)


def make_items(n: int, **fields) -> list[Item]:
    return [
        Item.objects.create(external_id=f"sku-{i}", title=f"商品 {i} 羽绒服 款{i % 7}", **fields)
        for i in range(n)
    ]


def test_binary_vectors_equal_what_the_orm_reads(space):
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


def test_profile_read_in_binary_matches_the_stored_sums(space):
    items = make_items(3)
    embedding.embed_items(space, [item.pk for item in items])
    for item in items:
        events.record_event(events.EventInput(user="u1", item=item.external_id, kind="like"))
    stored = UserProfile.objects.get(user__external_id="u1", space=space)
    state = profiles.load(stored.user_id, space)
    np.testing.assert_allclose(state.item_sum, np.asarray(stored.item_sum), rtol=1e-6)
    assert state.text_sum is None and state.events == 3
    assert state.ref_time == stored.ref_time


def test_serving_space_follows_activation_and_ignores_caller_changes(space):
    other = spaces.create_space("other", "hashing", {"dim": 16})
    assert spaces.serving_space().pk == space.pk
    spaces.serving_space().name = "changed by a caller"
    assert spaces.serving_space().name == "fast"
    spaces.activate_space(other)  # a save: seen at once in this process
    assert spaces.serving_space().pk == other.pk


def test_serving_space_sees_a_switch_made_by_another_process(space, monkeypatch):
    other = spaces.create_space("other", "hashing", {"dim": 16})
    assert spaces.serving_space().pk == space.pk
    # Another process switches: rows change without this process's signals, and the
    # shared token is bumped (what its signal handler does there).
    EncoderSpace.objects.filter(pk=space.pk).update(is_active=False)
    EncoderSpace.objects.filter(pk=other.pk).update(is_active=True)
    from django.core.cache import cache

    cache.set(spaces._VERSION_KEY, "bumped elsewhere", None)
    assert spaces.serving_space().pk == space.pk  # within CHECK_S: this process's copy
    monkeypatch.setattr(spaces, "CHECK_S", 0.0)
    assert spaces.serving_space().pk == other.pk


def test_cooccurrence_candidates_sum_weighted_scores_and_name_the_strongest_seed(space):
    a, b, x, y, z, gone = make_items(6)
    Item.objects.filter(pk=gone.pk).update(is_active=False)
    ItemCooccurrence.objects.bulk_create(
        [
            ItemCooccurrence(item=a, other=x, score=0.5, count=3),
            ItemCooccurrence(item=b, other=x, score=0.4, count=2),
            ItemCooccurrence(item=a, other=y, score=0.2, count=1),
            ItemCooccurrence(item=b, other=z, score=0.9, count=5),
            ItemCooccurrence(item=a, other=gone, score=0.9, count=5),
            ItemCooccurrence(item=a, other=b, score=0.9, count=5),  # a seed itself
        ]
    )
    seeds = {a.pk: 1.0, b.pk: 2.0}
    found = cooccurrence.cooccurrence_candidates(seeds, 10, filters.Filters())
    # x: 0.5*1 + 0.4*2 = 1.3, strongest via b (0.8); z: 1.8 via b; y: 0.2 via a.
    assert list(found) == [z.pk, x.pk, y.pk]
    assert found[x.pk] == (pytest.approx(1.3), b.pk)
    assert found[z.pk] == (pytest.approx(1.8), b.pk)
    assert found[y.pk] == (pytest.approx(0.2), a.pk)
    excluded = cooccurrence.cooccurrence_candidates(seeds, 1, filters.Filters(exclude_ids={z.pk}))
    assert list(excluded) == [x.pk]
    Item.objects.filter(pk=y.pk).update(category="tea")
    by_category = cooccurrence.cooccurrence_candidates(seeds, 10, filters.Filters(category="tea"))
    assert list(by_category) == [y.pk]


def test_popular_head_holds_active_items_only_and_respects_filters(space):
    items = make_items(4)
    user = EndUser.objects.create(external_id="u")
    for rank, item in enumerate(items):
        for _ in range(4 - rank):
            Behaviour.objects.create(user=user, item=item, kind="purchase")
    Item.objects.filter(pk=items[0].pk).update(is_active=False)
    Item.objects.filter(pk=items[3].pk).update(category="tea")
    table = popularity.popularity()
    assert items[0].pk not in table
    assert list(popularity.top_items(table, 2, filters.Filters())) == [items[1].pk, items[2].pk]
    assert list(popularity.top_items(table, 2, filters.Filters(exclude_ids={items[1].pk}))) == [
        items[2].pk,
        items[3].pk,
    ]
    assert list(popularity.top_items(table, 2, filters.Filters(category="tea"))) == [items[3].pk]


def test_an_event_for_a_new_user_creates_the_user_once(space):
    (item,) = make_items(1)
    embedding.embed_items(space, [item.pk])
    first = events.record_event(events.EventInput(user="new", item="sku-0", kind="view"))
    second = events.record_event(events.EventInput(user="new", item="sku-0", kind="like"))
    assert first.created and second.created
    assert first.behaviour.user_id == second.behaviour.user_id
    assert EndUser.objects.filter(external_id="new").count() == 1
    assert second.behaviour.user.external_id == "new"
    assert Behaviour.objects.filter(user__external_id="new").count() == 2


def test_a_repeated_event_id_returns_the_stored_event_and_writes_nothing(space):
    (item,) = make_items(1)
    embedding.embed_items(space, [item.pk])
    event = events.EventInput(user="u", item="sku-0", kind="cart", event_id="e-1", value=2.0)
    first = events.record_event(event)
    profile = UserProfile.objects.get(user__external_id="u")
    again = events.record_event(event)
    assert (first.created, again.created, again.profile_updated) == (True, False, False)
    assert again.behaviour.pk == first.behaviour.pk
    assert again.behaviour.item.external_id == "sku-0" and again.behaviour.value == 2.0
    assert Behaviour.objects.count() == 1
    assert UserProfile.objects.get(pk=profile.pk).events == profile.events


def test_binary_fetches_are_listed_with_the_orm_queries_under_debug(space, settings):
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


def test_ef_search_follows_the_setting_within_pgvectors_bounds(settings):
    settings.RECOMMENDER_HNSW_EF_SEARCH = 40
    assert (nearest.ef_search(10), nearest.ef_search(100)) == (40, 200)
    settings.RECOMMENDER_HNSW_EF_SEARCH = 5000
    assert nearest.ef_search(10) == 1000  # pgvector refuses more
    del settings.RECOMMENDER_HNSW_EF_SEARCH
    assert nearest.ef_search(10) == 1000


def test_vectors_written_in_binary_read_back_exactly_and_upsert(space):
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


@pytest.mark.parametrize(
    "event",
    [
        events.EventInput(user="u", item="sku-0", kind="rating", value=4.5, event_id="r-1"),
        events.EventInput(user="u", kind="search", text="长款羽绒服", context={"page": "home"}),
    ],
)
def test_the_event_answer_matches_its_documented_serializer(space, event):
    from recommender.api import serializers

    make_items(1)
    recorded = events.record_event(event)
    assert serializers.recorded_data(recorded) == serializers.RecordedSerializer(recorded).data
    again = events.record_event(event) if event.event_id else recorded
    assert serializers.recorded_data(again) == serializers.RecordedSerializer(again).data


@pytest.mark.parametrize("user", ["known", "brand-new"])
def test_an_unknown_item_is_refused_and_writes_nothing(space, user):
    make_items(1)
    events.record_event(events.EventInput(user="known", item="sku-0", kind="view"))
    before = (Behaviour.objects.count(), EndUser.objects.count(), UserProfile.objects.count())
    with pytest.raises(events.UnknownItem, match="no-such-sku"):
        events.record_event(events.EventInput(user=user, item="no-such-sku", kind="like"))
    after = (Behaviour.objects.count(), EndUser.objects.count(), UserProfile.objects.count())
    assert after == before


def test_an_event_folds_the_items_vector_into_an_existing_profile(space):
    items = make_items(2)
    embedding.embed_items(space, [item.pk for item in items])
    events.record_event(events.EventInput(user="u", item="sku-0", kind="like"))
    events.record_event(events.EventInput(user="u", item="sku-1", kind="like"))
    user = EndUser.objects.get(external_id="u")
    incremental = profiles.load(user.pk, space)
    exact = profiles.recompute(user.pk, space)
    assert incremental.events == exact.events == 2
    np.testing.assert_allclose(incremental.item_sum, exact.item_sum, rtol=1e-5, atol=1e-6)


@pytest.fixture
def committed_shop(transactional_db, settings):
    """A small shop whose rows are committed (so a second connection sees them), and a
    spy on the nearest-neighbour searches reporting which server process ran them."""
    from recommender.serving import helper_connection

    settings.RECOMMENDER_EMBED_ON_SAVE = False
    space = spaces.create_space("fast", "hashing", {"dim": 48}, activate=True)
    items = make_items(60)
    for i, item in enumerate(items):
        item.category = f"c{i % 3}"
        item.save()
    embedding.embed_items(space, [item.pk for item in items])
    for item in items[:4]:
        events.record_event(events.EventInput(user="u1", item=item.external_id, kind="view"))
    yield EndUser.objects.get(external_id="u1")
    helper_connection.shutdown()


def _spy_on_searches(monkeypatch) -> list[int]:
    backends: list[int] = []
    original = nearest.nearest_rows

    def spy(*args, **kwargs):
        connection.ensure_connection()
        backends.append(connection.connection.info.backend_pid)
        return original(*args, **kwargs)

    monkeypatch.setattr(candidates, "nearest_rows", spy)  # as the pipeline calls it
    return backends


def _served(user, **fields) -> list[tuple[int, float, list[str]]]:
    from recommender.serving.pipeline import RecommendationRequest, recommend

    found = recommend(RecommendationRequest(user=user, k=8, **fields))
    return [(r.item.pk, round(r.score, 6), r.sources, r.reason.text) for r in found]


def test_the_nearest_search_runs_on_a_second_connection_with_the_same_answer(
    committed_shop, monkeypatch, settings
):
    from django.db import transaction

    backends = _spy_on_searches(monkeypatch)
    parallel_answer = _served(committed_shop, category="c1")
    main_pid = connection.connection.info.backend_pid
    assert len(backends) == 1 and backends[0] != main_pid
    assert parallel_answer and {pk for pk, *_ in parallel_answer} <= set(
        Item.objects.filter(category="c1").values_list("pk", flat=True)
    )
    assert any("history" in sources for _, _, sources, _ in parallel_answer)

    settings.RECOMMENDER_PARALLEL_RETRIEVAL = False
    assert _served(committed_shop, category="c1") == parallel_answer
    assert backends[-1] == main_pid
    settings.RECOMMENDER_PARALLEL_RETRIEVAL = True
    with transaction.atomic():  # another connection could not see this transaction's rows
        assert _served(committed_shop, category="c1") == parallel_answer
    assert backends[-1] == main_pid


def test_a_lost_helper_connection_is_replaced_and_the_answer_kept(committed_shop, monkeypatch):
    backends = _spy_on_searches(monkeypatch)
    first = _served(committed_shop)
    with connection.cursor() as cursor:  # the server drops the helper's connection
        cursor.execute("SELECT pg_terminate_backend(%s)", [backends[0]])
    assert _served(committed_shop) == first
    assert _served(committed_shop) == first
    assert backends[-1] not in (backends[0], connection.connection.info.backend_pid)


def test_items_read_in_binary_equal_the_orms(space):

    items = make_items(3, tags=["羽绒服", "new"], attributes={"price": 399.5, "brand": "北辰"})
    Item.objects.filter(pk=items[1].pk).update(description="长款\n保暖", is_active=False)
    ids = [item.pk for item in items] + [10**9]  # an unknown id is left out, as in_bulk does
    embedding.embed_items(space, [items[0].pk])
    binary, vectors = candidates.load_items(ids, space)
    orm = Item.objects.in_bulk(ids)
    assert binary.keys() == orm.keys()
    assert vectors.keys() == {items[0].pk}
    np.testing.assert_array_equal(
        vectors[items[0].pk], profiles.item_vectors(space, [items[0].pk])[items[0].pk]
    )
    for pk, item in orm.items():
        for field in Item._meta.concrete_fields:
            assert getattr(binary[pk], field.attname) == getattr(item, field.attname), field
        assert not binary[pk]._state.adding


def test_cosine_features_computed_by_the_database_match_numpy(space):
    items = make_items(8)
    embedding.embed_items(space, [item.pk for item in items])
    ItemVector.objects.filter(space=space, item=items[7]).update(embedding=[0.0] * 48)
    events.record_event(events.EventInput(user="u1", item=items[0].external_id, kind="dislike"))
    events.record_event(events.EventInput(user="u1", item=items[1].external_id, kind="dislike"))
    user = EndUser.objects.get(external_id="u1")
    rng = np.random.default_rng(0)
    profile, query = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 48)).astype(np.float32))
    cosine = nearest.CosineFeatures(profile, query, dislikes_of=user.pk, vectors=True)
    ids = [item.pk for item in items[2:]]
    rows = nearest.candidate_rows(space, ids, filters.Filters(), cosine)
    assert rows.keys() == set(ids)

    stored = profiles.item_vectors(space, [item.pk for item in items])
    unit = {pk: v / np.linalg.norm(v) for pk, v in stored.items() if np.linalg.norm(v) > 0}
    disliked = np.stack([unit[items[0].pk], unit[items[1].pk]])
    for pk in ids[:-1]:
        expected = {
            "similarity": float(unit[pk] @ profile),
            "query_similarity": float(unit[pk] @ query),
            "dislike_similarity": max(float((disliked @ unit[pk]).max()), 0.0),
        }
        assert rows[pk].features == pytest.approx(expected, abs=1e-5)
        np.testing.assert_array_equal(rows[pk].vector, stored[pk])
    assert rows[items[7].pk].features == {}  # a zero vector has no cosine

    # The nearest-neighbour search computes the same features for the rows it finds.
    found = nearest.nearest_rows(profile, 3, space=space, cosine=cosine)
    for row in found:
        if row.item_id in ids[:-1]:
            assert row.features == pytest.approx(rows[row.item_id].features, abs=1e-5)
            assert row.similarity == pytest.approx(row.features["similarity"], abs=1e-5)
    # Without a user or vectors asked for: no dislike feature, no vectors.
    plain = nearest.candidate_rows(space, ids, filters.Filters(), nearest.CosineFeatures(profile))
    assert set(plain[ids[0]].features) == {"similarity"} and plain[ids[0]].vector is None


def test_a_request_does_not_queue_behind_a_busy_helper(committed_shop, monkeypatch):
    import threading

    from recommender.serving import helper_connection

    release = threading.Event()
    held = helper_connection.start(release.wait, 10)  # the helper is busy with another request
    try:
        backends = _spy_on_searches(monkeypatch)
        assert _served(committed_shop)
        assert backends == [connection.connection.info.backend_pid]  # ran inline
    finally:
        release.set()
    assert held.result() is True and not held.ran_inline
    assert _served(committed_shop)
    assert backends[-1] != connection.connection.info.backend_pid  # the helper is free again


@pytest.mark.parametrize("explained", [True, False])
def test_the_list_answer_matches_its_documented_serializer(space, explained):
    from recommender.api import serializers
    from recommender.serving.pipeline import RecommendationRequest, recommend

    items = make_items(12, attributes={"price": 99.5, "brand": "北辰"}, tags=["羽绒服"])
    embedding.embed_items(space, [item.pk for item in items])
    for item in items[:3]:
        events.record_event(events.EventInput(user="u1", item=item.external_id, kind="view"))
    user = EndUser.objects.get(external_id="u1")
    results = recommend(
        RecommendationRequest(user=user, k=6, query="羽绒服 款3", explain=explained, lang="en")
    )
    assert len(results) == 6
    assert any(r.reason and r.reason.keywords for r in results) == explained
    direct = serializers.recommendation_list_data(results, "u1", "en")
    payload = {"user": "u1", "lang": "en", "items": results}
    assert direct == serializers.RecommendationListSerializer(payload).data


def test_candidates_per_source_follow_the_setting(space, settings):
    from recommender.serving.candidates import candidate_pool
    from recommender.serving.pipeline import RecommendationRequest

    items = make_items(60)
    embedding.embed_items(space, [item.pk for item in items])
    events.record_event(events.EventInput(user="u1", item=items[0].external_id, kind="view"))
    user = EndUser.objects.get(external_id="u1")
    for per_source in (30, 45):
        settings.RECOMMENDER_CANDIDATES_PER_SOURCE = per_source
        pool = candidate_pool(RecommendationRequest(user=user, k=5)).candidates
        assert sum("history" in c.sources for c in pool) == per_source
    pool = candidate_pool(RecommendationRequest(user=user, k=5, per_source=12)).candidates
    assert sum("history" in c.sources for c in pool) == 15  # at least 3k


def test_the_search_leaves_out_the_users_items_in_its_own_sql(space):
    from datetime import timedelta

    from django.utils import timezone

    items = make_items(10)
    embedding.embed_items(space, [item.pk for item in items])
    now = timezone.now()
    done = ((items[0], "view", 3), (items[1], "dislike", 2), (items[2], "like", 0))
    for item, kind, days in done:
        events.record_event(
            events.EventInput(
                user="u1", item=item.external_id, kind=kind, occurred_at=now - timedelta(days)
            )
        )
    user = EndUser.objects.get(external_id="u1")
    vector = np.ones(48, dtype=np.float32)

    def found(**exclusion):
        history = nearest.HistoryExclusion(user.pk, **exclusion)
        rows = nearest.nearest_rows(vector, 10, space=space, history=history)
        return {row.item_id for row in rows}

    everything = {item.pk for item in items}
    assert found() == everything - {items[0].pk, items[1].pk, items[2].pk}
    assert found(seen=False) == everything - {items[1].pk}  # dislikes only
    assert found(before=now - timedelta(days=1)) == everything - {items[0].pk, items[1].pk}
    assert found(before=now - timedelta(days=2, hours=12)) == everything - {items[0].pk}
