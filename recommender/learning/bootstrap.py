"""Bootstrap intervals over per-user scores: how sure an offline comparison is.

Every recommender of an evaluation ranks for the same users, so two of them are compared
*paired*: the users are resampled with replacement and the mean of the per-user
differences is taken on each resample. The pairing removes what the users themselves
contribute (a user whose next item is easy to guess is easy for every recommender), so
the interval of a difference is much narrower than the two recommenders' own intervals
would suggest. Percentile intervals, a fixed seed, numpy only.

References: Efron & Tibshirani, *An Introduction to the Bootstrap* (1993), ch. 13
(percentile intervals); Sakai, "Statistical reform in information retrieval?" (SIGIR
Forum 2014) on paired tests over topics (here: users).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
# Resample indices are drawn in blocks of at most this many, so memory stays bounded on
# large evaluations (1000 resamples × 100,000 users would be 800 MB at once).
_BLOCK_CELLS = 4_000_000


@dataclass(frozen=True)
class Interval:
    """A mean (or a mean difference) and its bootstrap interval."""

    estimate: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        """Whether the whole interval lies on one side of 0 (a difference "is real")."""
        return self.low > 0.0 or self.high < 0.0


def resampled_means(
    columns: np.ndarray, *, resamples: int = RESAMPLES, seed: int = 0
) -> np.ndarray:
    """(resamples, m) means of the (n, m) ``columns`` over users drawn with replacement.

    All columns see the same resampled users on each draw: that is what pairs them.
    """
    columns = np.asarray(columns, dtype=np.float64)
    if columns.ndim == 1:
        columns = columns[:, None]
    n = columns.shape[0]
    if n == 0:
        return np.zeros((resamples, columns.shape[1]))
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, columns.shape[1]))
    for start, size in _blocks(resamples, n):
        picks = rng.integers(0, n, size=(size, n))
        out[start : start + size] = columns[picks].mean(axis=1)
    return out


def mean_interval(
    values: Sequence[float] | np.ndarray,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> Interval:
    """The mean of per-user ``values`` with its percentile bootstrap interval."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return Interval(0.0, 0.0, 0.0)
    means = resampled_means(values, resamples=resamples, seed=seed)[:, 0]
    return _interval(float(values.mean()), means, level)


def paired_interval(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> Interval:
    """``b`` − ``a``: the mean per-user difference and its paired bootstrap interval.

    ``a`` and ``b`` hold one score per user, in the same user order.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need the same users: {a.shape} vs {b.shape}")
    return mean_interval(b - a, resamples=resamples, seed=seed, level=level)


def _interval(estimate: float, means: np.ndarray, level: float) -> Interval:
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(estimate, float(low), float(high))


def _blocks(resamples: int, n: int) -> Iterator[tuple[int, int]]:
    size = max(1, min(resamples, _BLOCK_CELLS // max(n, 1)))
    for start in range(0, resamples, size):
        yield start, min(size, resamples - start)
