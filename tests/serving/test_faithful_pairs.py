"""``evidence.faithful_pairs`` re-scores every anchor's removal in one batch: the same
pairs as re-scoring one anchor at a time (the loop it replaced, kept here as the
reference), on random heads, profiles, anchors and co-occurrence shares."""

import dataclasses

import numpy as np
import pytest

from recommender.serving import evidence, profiles
from recommender.serving.ranking import FEATURES, BlendScorer, Candidate


def _unit(vector):
    if vector is None:
        return None
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 1e-9 else None


def reference(anchors, ranked, k, *, scorer, vectors, profile, anchor_weights, shares):
    """One anchor at a time, as ``faithful_pairs`` did before its batch."""
    faithful = set()
    base = _unit(profile.vector()) if profile is not None else None
    ids = [c.item_id for c in ranked]
    matrix = np.array(
        [[c.features.get(name, 0.0) for name in FEATURES] for c in ranked], dtype=np.float32
    )
    similarity, cooccurrence = FEATURES.index("similarity"), FEATURES.index("cooccurrence")
    units = [_unit(vectors.get(i)) for i in ids]
    has_unit = np.array([u is not None for u in units])
    if base is not None and has_unit.any():
        unit_matrix = np.stack(
            [u if u is not None else np.zeros(len(base), np.float32) for u in units]
        )
        base_dots = unit_matrix.astype(np.float64) @ base.astype(np.float64)
    for anchor in anchors:
        adjusted = matrix.copy()
        if base is not None and has_unit.any() and profile.item_sum is not None:
            if anchor in vectors:
                weight = anchor_weights.get(anchor, 0.0)
                reduced = dataclasses.replace(
                    profile, item_sum=profile.item_sum - np.float32(weight) * vectors[anchor]
                )
                shifted = _unit(reduced.vector())
                if shifted is not None:
                    change = unit_matrix.astype(np.float64) @ shifted.astype(np.float64)
                    change -= base_dots
                    adjusted[has_unit, similarity] += change[has_unit].astype(np.float32)
        for row, item_id in enumerate(ids):
            share = shares.get((anchor, item_id))
            if share is not None and "cooccurrence" in ranked[row].features:
                adjusted[row, cooccurrence] *= 1.0 - share
        order = np.argsort(-np.asarray(scorer.score(adjusted), np.float64), kind="stable")
        position_of = np.empty(len(ids), dtype=np.int64)
        position_of[order] = np.arange(len(ids))
        for position, item_id in enumerate(ids[:k]):
            moved = int(position_of[position])
            if moved >= k or moved - position > evidence.MAX_SHIFT:
                faithful.add((anchor, item_id))
    return faithful


@pytest.mark.parametrize("seed", range(12))
def test_the_batch_finds_the_pairs_one_anchor_at_a_time_finds(seed, settings):
    rng = np.random.default_rng(seed)
    dim, n, k = 16, 30, 10
    settings.RECOMMENDER_PROFILE_TEXT_WEIGHT = [0.0, 0.3][seed % 2]
    ids = list(range(100, 100 + n))
    vectors = {i: rng.normal(size=dim).astype(np.float32) for i in ids if rng.random() > 0.1}
    anchors = set(rng.choice(ids, size=6, replace=False).tolist()) | {999}  # one without a row
    vectors.update({a: rng.normal(size=dim).astype(np.float32) for a in anchors if a != 999})
    if seed % 3 == 0:
        vectors.pop(next(iter(sorted(anchors))), None)  # an anchor without a vector
    anchor_weights = {a: float(rng.uniform(0.5, 4.0)) for a in anchors}
    item_sum = sum(anchor_weights[a] * vectors[a] for a in anchors if a in vectors)
    item_sum = (item_sum + rng.normal(size=dim)).astype(np.float32)
    text_sum = rng.normal(size=dim).astype(np.float32) if seed % 4 else None
    profile = profiles.ProfileState(item_sum=item_sum, text_sum=text_sum, ref_time=None)
    base = _unit(profile.vector())
    ranked = []
    for item_id in ids:
        features = {name: float(rng.random()) for name in FEATURES}
        features["similarity"] = (
            float(_unit(vectors[item_id]) @ base) if item_id in vectors else 0.0
        )
        if rng.random() < 0.3:
            del features["cooccurrence"]
        candidate = Candidate(item_id)
        candidate.features = features
        ranked.append(candidate)
    shares = {
        (a, i): float(rng.uniform(0.2, 1.0)) for a in anchors for i in ids if rng.random() < 0.2
    }
    scorer = BlendScorer({"similarity": 3.0, "cooccurrence": 2.0})
    ranked.sort(
        key=lambda c: (
            -float(
                scorer.score(np.array([[c.features.get(f, 0.0) for f in FEATURES]], np.float32))[0]
            )
        )
    )
    arguments = dict(
        scorer=scorer,
        vectors=vectors,
        profile=profile,
        anchor_weights=anchor_weights,
        shares=shares,
    )
    expected = reference(anchors, ranked, k, **arguments)
    assert evidence.faithful_pairs(anchors, ranked, k, **arguments) == expected
    # Some pairs are faithful and some are not, or the comparison says little.
    assert 0 < len(expected) < len(anchors) * k


def test_no_profile_leaves_the_cooccurrence_shares():
    ranked = [Candidate(1), Candidate(2), Candidate(3)]
    for value, candidate in zip([0.9, 0.5, 0.4], ranked, strict=True):
        candidate.features = {"cooccurrence": value}
    scorer = BlendScorer({"cooccurrence": 1.0})
    found = evidence.faithful_pairs(
        {7},
        ranked,
        1,
        scorer=scorer,
        vectors={},
        profile=None,
        anchor_weights={},
        shares={(7, 1): 0.9},
    )
    assert found == {(7, 1)}  # without anchor 7 item 1 falls from first to last
