"""Tuning the fixed blend's weights on the validation split, never the test split.

Each validation case's candidate pool is built once, by the serving code itself, as the
evaluation's ``full`` recommender would see it (``evaluation.replay``: co-occurrence
without the validation targets and without every user's last event). A weight vector is
then scored on every pool at once with one matrix product, and the rank of each target
gives NDCG@k: a trial costs milliseconds, not a pipeline run per case. With no
diversity, no rotation and no boosters (the evaluation's requests), serving ranks a pool
by score alone, in pool order on ties; the replay does the same, so the defaults' NDCG
here is the ``full`` recommender's on the validation split.

The search: seeded random draws around the defaults (each weight scaled by
exp(spread · z), its sign kept), then coordinate refinement from the best (each weight
in turn scaled up or down, or zeroed, with shrinking steps), until the trial budget is
spent. Only the blend's features that vary inside some pool are searched: a feature
constant within every pool (the query similarity when no request has a query) cannot
change an order. Plain numpy, no optimiser library: the objective is a step function of
the weights, so gradients would not help, and a few hundred trials are enough for nine
weights.

The best weights are chosen on the same validation cases their NDCG and interval are
reported on, so both are optimistic; confirm on the test split
(``evaluate --recommenders full,full+scenario`` once they are stored).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from recommender.learning import bootstrap, evaluation
from recommender.learning.bootstrap import Interval
from recommender.models import EndUser, Scenario
from recommender.serving import candidates, pipeline, scenarios
from recommender.serving.ranking import DEFAULT_WEIGHTS, FEATURES, BlendScorer

# Coordinate refinement's multiplicative steps, largest first.
STEPS = (2.0, 1.5, 1.2, 1.1)


@dataclass
class Pools:
    """Every case's candidate features, stacked, and where its targets sit.

    Rows of case ``c`` are ``starts[c]:starts[c + 1]`` in pool order. Each (case, target)
    pair that the pool holds is ``pair_case[p]``, ``pair_row[p]``.
    """

    features: np.ndarray  # (rows, len(FEATURES)) float32
    starts: np.ndarray  # (cases + 1,)
    pair_case: np.ndarray  # (pairs,)
    pair_row: np.ndarray  # (pairs,)
    ideal: np.ndarray  # (cases,) the ideal DCG@k of each case
    k: int
    user_ids: list[int] = field(default_factory=list)

    @property
    def cases(self) -> int:
        return len(self.starts) - 1

    def __post_init__(self) -> None:
        # Each pair against every row of its case (flattened), for the rank count.
        sizes = np.diff(self.starts)[self.pair_case]
        self._pair_starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self._expand_pair = np.repeat(np.arange(len(self.pair_case)), sizes)
        offsets = np.arange(int(sizes.sum())) - np.repeat(self._pair_starts, sizes)
        self._expand_row = self.starts[self.pair_case][self._expand_pair] + offsets

    def ndcg(self, weights: np.ndarray) -> np.ndarray:
        """Each case's NDCG@k when its pool is ranked by ``features @ weights``."""
        scores = self.features @ np.asarray(weights, dtype=np.float32)
        out = np.zeros(self.cases)
        if not len(self.pair_case):
            return out
        rows = self._expand_row
        target_row = self.pair_row[self._expand_pair]
        target = scores[target_row]
        other = scores[rows]
        # Serving sorts by score, stably: ties keep pool order.
        above = (other > target) | ((other == target) & (rows < target_row))
        position = np.add.reduceat(above.astype(np.int64), self._pair_starts)
        gain = np.where(position < self.k, 1.0 / np.log2(position + 2.0), 0.0)
        dcg = np.bincount(self.pair_case, weights=gain, minlength=self.cases)
        np.divide(dcg, self.ideal, out=out, where=self.ideal > 0)
        return out

    def varying(self) -> list[str]:
        """The features that differ between two candidates of at least one pool."""
        if not len(self.features):
            return []
        sizes = np.diff(self.starts)
        starts = self.starts[:-1][sizes > 0]
        spread = np.maximum.reduceat(self.features, starts) - np.minimum.reduceat(
            self.features, starts
        )
        return [
            name for name, moved in zip(FEATURES, (spread > 0).any(axis=0), strict=True) if moved
        ]


def build_pools(
    cases: list[evaluation.Case],
    *,
    k: int = 10,
    per_source: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Pools:
    """The candidate pool of every case, built once as serving builds it (``k`` deep
    lists; ``per_source`` None: the configured candidates per source)."""
    blocks, starts, pair_case, pair_row, ideal = [], [0], [], [], []
    with evaluation.replay(cases):
        users = EndUser.objects.in_bulk([case.user_id for case in cases])
        for index, case in enumerate(cases):
            pool = candidates.candidate_pool(
                pipeline.RecommendationRequest(
                    user=users[case.user_id],
                    k=k,
                    as_of=case.as_of,
                    context=case.context,
                    explain=False,
                    per_source=per_source,
                )
            ).candidates
            for row, candidate in enumerate(pool):
                if candidate.item_id in case.targets:
                    pair_case.append(index)
                    pair_row.append(starts[-1] + row)
            if pool:
                blocks.append(np.stack([c.feature_vector() for c in pool]))
            starts.append(starts[-1] + len(pool))
            ideal.append(sum(1.0 / math.log2(i + 2) for i in range(min(len(case.targets), k))))
            if progress:
                progress(1)
    features = np.concatenate(blocks) if blocks else np.zeros((0, len(FEATURES)), np.float32)
    return Pools(
        features=features.astype(np.float32),
        starts=np.asarray(starts, dtype=np.int64),
        pair_case=np.asarray(pair_case, dtype=np.int64),
        pair_row=np.asarray(pair_row, dtype=np.int64),
        ideal=np.asarray(ideal, dtype=np.float64),
        k=k,
        user_ids=[case.user_id for case in cases],
    )


@dataclass
class TuningResult:
    """The best weights found and how they compare with the defaults' on validation."""

    defaults: dict[str, float]
    best: dict[str, float]
    searched: list[str]
    default_ndcg: float
    best_ndcg: float
    improvement: Interval  # best − defaults, paired bootstrap over the validation cases
    trials: int
    cases: int
    k: int
    seconds: float
    current: dict[str, float] | None = None  # the default scenario's weights, if any
    current_ndcg: float | None = None

    @property
    def beats_defaults(self) -> bool:
        return self.best_ndcg > self.default_ndcg


def default_weights() -> dict[str, float]:
    """The blend's weights as serving uses them without a scenario (code defaults and
    ``RECOMMENDER_BLEND_WEIGHTS``), for the blend's features."""
    vector = BlendScorer().weights
    return {name: float(vector[FEATURES.index(name)]) for name in DEFAULT_WEIGHTS}


def search(
    pools: Pools,
    *,
    trials: int = 200,
    seed: int = 0,
    spread: float = 0.5,
    start: dict[str, float] | None = None,
    resamples: int = bootstrap.RESAMPLES,
    progress: Callable[[int], None] | None = None,
) -> TuningResult:
    """Search the blend's weights on ``pools`` within ``trials`` evaluations (the
    defaults, and ``start`` when given, count as trials): half random draws around the
    defaults, half coordinate refinement from the best so far."""
    if trials < 1:
        raise ValueError("trials must be at least 1")
    started = time.perf_counter()
    defaults = default_weights()
    names = list(defaults)
    searched = [name for name in pools.varying() if name in defaults]
    rng = np.random.default_rng(seed)
    spent = 0

    def run(weights: dict[str, float]) -> np.ndarray:
        nonlocal spent
        spent += 1
        if progress:
            progress(1)
        return pools.ndcg(_vector(weights))

    default_scores = run(defaults)
    best, best_scores = dict(defaults), default_scores
    current_ndcg = None
    if start:
        start = {**defaults, **{n: float(v) for n, v in start.items() if n in defaults}}
    if start and spent < trials:
        start_scores = run(start)
        current_ndcg = float(start_scores.mean())
        if start_scores.mean() > best_scores.mean():
            best, best_scores = start, start_scores
    scale = (
        float(np.mean([abs(v) for v in defaults.values() if v])) if any(defaults.values()) else 1.0
    )
    if searched:
        random_budget = max(0, (trials - spent) // 2)
        for _ in range(random_budget):
            draw = dict(defaults)
            for name in searched:
                value = defaults[name]
                z = float(rng.standard_normal())
                draw[name] = value * math.exp(spread * z) if value else spread * scale * z
            scores = run(draw)
            if scores.mean() > best_scores.mean():
                best, best_scores = draw, scores
        best, best_scores = _refine(best, best_scores, searched, scale, trials - spent, run)
    improvement = bootstrap.paired_interval(
        default_scores, best_scores, resamples=resamples, seed=seed
    )
    return TuningResult(
        defaults=defaults,
        best={name: best[name] for name in names},
        searched=searched,
        default_ndcg=float(default_scores.mean()),
        best_ndcg=float(best_scores.mean()),
        improvement=improvement,
        trials=spent,
        cases=pools.cases,
        k=pools.k,
        seconds=time.perf_counter() - started,
        current=start or None,
        current_ndcg=current_ndcg,
    )


def _refine(best, best_scores, searched, scale, budget, run):
    """Coordinate refinement: each weight in turn scaled by a step (or its inverse), or
    zeroed on the first pass; the step shrinks when a full pass finds nothing better."""
    for step_index, step in enumerate(STEPS):
        improved = True
        while improved:
            improved = False
            for name in searched:
                value = best[name]
                options = [value * step, value / step] if value else [scale * 0.1, -scale * 0.1]
                if step_index == 0 and value:
                    options.append(0.0)
                for option in options:
                    if budget <= 0:
                        return best, best_scores
                    budget -= 1
                    trial = {**best, name: option}
                    scores = run(trial)
                    if scores.mean() > best_scores.mean():
                        best, best_scores, improved = trial, scores, True
                        break
    return best, best_scores


def _vector(weights: dict[str, float]) -> np.ndarray:
    """The blend's weight vector for ``weights`` (serving's ``BlendScorer`` builds it)."""
    return BlendScorer(weights).weights


def default_scenario_weights() -> dict[str, float] | None:
    """The default scenario's blend weights (None: no default scenario, or none set)."""
    scenario = Scenario.objects.filter(is_default=True).first()
    if scenario is None or not scenario.blend_weights:
        return None
    return dict(scenario.blend_weights)


def store(weights: dict[str, float]) -> Scenario:
    """Make ``weights`` the default scenario's blend weights (creating a default scenario
    named ``default`` when there is none). Raises ``ValueError`` when serving would
    refuse them."""
    scenario = Scenario.objects.filter(is_default=True).first()
    if scenario is None:
        scenario = Scenario(
            name=_free_name("default"),
            description="created by manage.py tune to carry the tuned blend weights",
            is_default=True,
        )
    scenario.blend_weights = {name: float(value) for name, value in weights.items()}
    if problem := scenarios.problems(scenario).get("blend_weights"):
        raise ValueError(f"tuned weights not stored: {problem}")
    scenario.save()
    return scenario


def _free_name(name: str) -> str:
    """``name``, or ``name-2``, ``name-3`` … when a scenario already has it."""
    taken = set(Scenario.objects.filter(name__startswith=name).values_list("name", flat=True))
    candidates = [name, *(f"{name}-{n}" for n in range(2, len(taken) + 3))]
    return next(c for c in candidates if c not in taken)
