"""Paired bootstrap intervals (learning.bootstrap) on synthetic per-user scores."""

import numpy as np
import pytest

from recommender.learning import bootstrap


def scores(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-user NDCG-like scores of two recommenders: ``b`` better than ``a`` by 0.05
    on average, users differing a lot in how easy they are."""
    rng = np.random.default_rng(seed)
    easy = rng.random(n)
    a = np.clip(easy + rng.normal(0, 0.1, n), 0, 1)
    b = np.clip(easy + 0.05 + rng.normal(0, 0.1, n), 0, 1)
    return a, b


def test_intervals_shrink_with_more_users():
    widths = []
    for n in (50, 500, 5000):
        a, b = scores(n)
        own = bootstrap.mean_interval(a)
        delta = bootstrap.paired_interval(a, b)
        assert own.low <= own.estimate <= own.high and delta.low <= delta.estimate <= delta.high
        widths.append((own.high - own.low, delta.high - delta.low))
    assert widths[0][0] > widths[1][0] > widths[2][0]
    assert widths[0][1] > widths[1][1] > widths[2][1]


def test_a_clearly_better_recommender_gets_an_interval_above_zero():
    a, b = scores(300)
    delta = bootstrap.paired_interval(a, b)
    assert delta.excludes_zero and delta.low > 0
    # The same users drawn twice for the worse one: no difference, an interval around 0.
    assert not bootstrap.paired_interval(a, a.copy()).excludes_zero


def test_pairing_narrows_the_interval_of_a_difference():
    a, b = scores(300)
    paired = bootstrap.paired_interval(a, b)
    # Unpaired: each recommender's own interval is wider than the paired difference's.
    own = bootstrap.mean_interval(a)
    assert paired.high - paired.low < (own.high - own.low) / 2


def test_fixed_seed_repeats_and_blocks_do_not_change_the_draws(monkeypatch):
    a, b = scores(400)
    first = bootstrap.paired_interval(a, b, seed=3)
    assert bootstrap.paired_interval(a, b, seed=3) == first
    monkeypatch.setattr(bootstrap, "_BLOCK_CELLS", 1000)  # many small blocks
    assert bootstrap.paired_interval(a, b, seed=3) == first


def test_paired_scores_need_the_same_users():
    with pytest.raises(ValueError, match="same users"):
        bootstrap.paired_interval([0.1, 0.2], [0.1])
    assert bootstrap.mean_interval([]) == bootstrap.Interval(0.0, 0.0, 0.0)
