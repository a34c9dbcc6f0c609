"""The nearest-neighbour search: ef_search, cosine features computed by the database,
and the user's own items left out in its SQL."""

import numpy as np
import pytest

from recommender.ingest import events
from recommender.models import EndUser, ItemVector
from recommender.serving import filters, nearest, profiles
from recommender.spaces import embedding


def test_ef_search_follows_the_setting_within_pgvectors_bounds(settings):
    settings.RECOMMENDER_HNSW_EF_SEARCH = 40
    assert (nearest.ef_search(10), nearest.ef_search(100)) == (40, 200)
    settings.RECOMMENDER_HNSW_EF_SEARCH = 5000
    assert nearest.ef_search(10) == 1000  # pgvector refuses more
    del settings.RECOMMENDER_HNSW_EF_SEARCH
    assert nearest.ef_search(10) == 1000


def test_cosine_features_computed_by_the_database_match_numpy(space, make_items):
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


def test_the_search_leaves_out_the_users_items_in_its_own_sql(space, make_items):
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
