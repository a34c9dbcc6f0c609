"""The recent-items source: the mean of the user's last few items' vectors (newest most,
dislikes pushing away), searched on its own and a feature of every candidate."""

from datetime import timedelta

import numpy as np
from django.utils import timezone

from recommender.models import Behaviour, EndUser, Item, ItemVector
from recommender.serving import candidates
from recommender.serving.pipeline import RecommendationRequest


def _basis(index: int, dim: int = 48) -> np.ndarray:
    vector = np.zeros(dim, np.float32)
    vector[index] = 1.0
    return vector


def _shop(space, make_items):
    items = make_items(8)
    for index, item in enumerate(items):
        ItemVector.objects.create(space=space, item=item, embedding=_basis(index))
    user = EndUser.objects.create(external_id="u1")
    start = timezone.now() - timedelta(hours=10)
    # Oldest first: A, B, C viewed; D viewed; E rated 1 (not positive); F disliked.
    steps = [(0, "view", None), (1, "view", None), (2, "view", None), (3, "view", None),
             (4, "rating", 1.0), (5, "dislike", None)]  # fmt: skip
    moments = []
    for hour, (index, kind, value) in enumerate(steps):
        moments.append(start + timedelta(hours=hour))
        Behaviour.objects.create(
            user=user, item=items[index], kind=kind, value=value, occurred_at=moments[-1]
        )
    return items, user, moments


def test_the_recent_vector_weights_the_newest_items_most_and_pushes_dislikes_away(
    space, make_items
):
    items, user, moments = _shop(space, make_items)
    got = candidates.recent_items_vector(user.pk, space)
    # Newest first: F disliked (pushes 0.5 away), E not positive, then D, C, B, A at
    # 0.7 ** 0, 1, 2, 3 (five items at most: all four count).
    expected = _basis(3) + 0.7 * _basis(2) + 0.49 * _basis(1) + 0.343 * _basis(0) - 0.5 * _basis(5)
    assert np.allclose(got, expected / np.linalg.norm(expected), atol=1e-5)
    # As of before D's view, and forgetting B: C, A only.
    got = candidates.recent_items_vector(
        user.pk, space, as_of=moments[3], forget=frozenset({items[1].pk})
    )
    expected = _basis(2) + 0.7 * _basis(0)
    assert np.allclose(got, expected / np.linalg.norm(expected), atol=1e-5)
    # Nothing positive: no vector.
    other = EndUser.objects.create(external_id="u2")
    Behaviour.objects.create(user=other, item=items[5], kind="dislike")
    assert candidates.recent_items_vector(other.pk, space) is None


def test_the_recent_items_search_finds_a_new_item_like_the_last_ones(space, make_items):
    items, user, _ = _shop(space, make_items)
    # A new item no one touched, closest to D (the newest positive item), and one like A.
    new_d = Item.objects.create(external_id="new-d", title="新品 D")
    new_a = Item.objects.create(external_id="new-a", title="新品 A")
    ItemVector.objects.create(space=space, item=new_d, embedding=_basis(3) + 0.3 * _basis(20))
    ItemVector.objects.create(space=space, item=new_a, embedding=_basis(0) + 0.3 * _basis(21))
    pool = candidates.candidate_pool(RecommendationRequest(user=user, k=5, explain=False))
    found = {c.item_id: c for c in pool.candidates}
    assert "recent" in found[new_d.pk].sources
    assert found[new_d.pk].features["recent_similarity"] > found[new_a.pk].features.get(
        "recent_similarity", 0.0
    )
    # Without the source, the feature is still computed for the candidates.
    pool = candidates.candidate_pool(
        RecommendationRequest(user=user, k=5, explain=False, sources=frozenset({"history"}))
    )
    assert all("recent" not in c.sources for c in pool.candidates)
    assert any(c.features.get("recent_similarity", 0) > 0 for c in pool.candidates)


def test_the_searches_around_recent_items_are_narrow_and_the_profiles_full(
    space, make_items, monkeypatch, settings
):
    from recommender.serving import nearest

    assert nearest.ef_search(10, 100) == 100 and nearest.ef_search(100, 100) == 200
    settings.RECOMMENDER_IN_PROCESS_SEARCH_ITEMS = 0  # searched in SQL, as a large catalogue
    items, user, _ = _shop(space, make_items)
    asked = []
    original = candidates.nearest_searches

    def spy(searches, **options):
        asked.append([(search.k, search.ef) for search in searches])
        return original(searches, **options)

    monkeypatch.setattr(candidates, "nearest_searches", spy)
    settings.RECOMMENDER_RECENT_EF_SEARCH = 64
    settings.RECOMMENDER_INTEREST_SEARCHES = 3
    candidates.candidate_pool(RecommendationRequest(user=user, k=5, explain=False))
    # Four positively engaged items, mutually orthogonal: four interests, merged to three
    # (RECOMMENDER_INTEREST_SEARCHES), each searched at 64 with its share of the 50 rows
    # (at least k), then the recent items' search (64). One call: one statement.
    (searches,) = asked
    assert [ef for _, ef in searches] == [64, 64, 64, 64]
    assert all(k >= 5 for k, _ in searches[:3]) and sum(k for k, _ in searches[:3]) <= 50 + 3 * 5
    # Without interests: the profile at the configured breadth, then the recent items'.
    settings.RECOMMENDER_INTEREST_SEARCHES = 0
    asked.clear()
    candidates.candidate_pool(RecommendationRequest(user=user, k=5, explain=False))
    assert asked == [[(50, None), (50, 64)]]


def test_interests_group_similar_items_and_keep_at_most_the_limit():
    rng = np.random.default_rng(3)
    centres = [_basis(0), _basis(1), _basis(2)]
    # Newest first: five items near centre 0, three near centre 1, one near centre 2.
    picked = [0, 0, 1, 0, 1, 0, 0, 1, 2]
    vectors = np.array([centres[c] + 0.05 * rng.standard_normal(48) for c in picked])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    weights = 0.9 ** np.arange(len(picked))
    found = candidates.interests(vectors, weights, limit=3)
    assert len(found) == 3
    # Heaviest first, each mean nearest its own centre, the shares summing to 1.
    assert [int(np.argmax(vector[:3])) for vector, _ in found] == [0, 1, 2]
    assert [share for _, share in found] == sorted((share for _, share in found), reverse=True)
    assert abs(sum(share for _, share in found) - 1.0) < 1e-6
    lengths = [
        np.linalg.norm(
            (vectors * weights[:, None])[[i for i, c in enumerate(picked) if c == g]].sum(0)
        )
        for g in range(3)
    ]
    assert abs(found[0][1] - lengths[0] / sum(lengths)) < 1e-6
    # A limit of two merges the lightest interest into one of the others.
    assert len(candidates.interests(vectors, weights, limit=2)) == 2
    # One interest only: one group, whatever the limit.
    assert len(candidates.interests(vectors[[0, 1, 3]], weights[:3], limit=3)) == 1


def test_a_user_with_two_interests_gets_the_nearest_items_of_both(space, make_items, settings):
    settings.RECOMMENDER_INTEREST_SEARCHES = 3
    # Two clusters far apart; the user viewed three items of the first and two of the
    # second: the history source finds the unseen items of both.
    items = make_items(12)
    rng = np.random.default_rng(5)
    for index, item in enumerate(items):
        centre = _basis(0) if index < 6 else _basis(1)
        vector = centre + 0.05 * rng.standard_normal(48)
        ItemVector.objects.create(space=space, item=item, embedding=vector / np.linalg.norm(vector))
    user = EndUser.objects.create(external_id="u1")
    start = timezone.now() - timedelta(hours=5)
    for hour, index in enumerate([0, 1, 2, 6, 7]):
        Behaviour.objects.create(
            user=user, item=items[index], kind="view", occurred_at=start + timedelta(hours=hour)
        )
    pool = candidates.candidate_pool(
        RecommendationRequest(user=user, k=2, explain=False, sources=frozenset({"history"}))
    )
    found = {c.item_id for c in pool.candidates if "history" in c.sources}
    assert {items[i].pk for i in (3, 4, 5, 8, 9, 10, 11)} <= found
