"""Offline evaluation: protocols that hold out what users did next, and ranking metrics.

The recommender under test is the serving code itself (``pipeline.recommend``) with
``as_of`` set to each case's cut, so it only sees what was known then. Baselines are the
same pipeline restricted to one candidate source. Everything the evaluation writes
(co-occurrence recomputed without the held-out events) happens inside a transaction that
is rolled back, so a live site is left as it was.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.db import transaction

from recommender import behaviour, spaces
from recommender.models import Behaviour, EndUser, Item
from recommender.serving import cooccurrence, pipeline, profiles
from recommender.serving.ranking import FEATURES, BlendScorer, Scorer, intra_list_distance


@dataclass
class Case:
    """One user at one moment: what they did next is hidden from the recommender."""

    user_id: int
    as_of: datetime
    targets: set[int]
    held_out_events: list[int] = field(default_factory=list)
    # The context the held-out event was sent with (device, page …): the request context of
    # the list the user would have been shown then ({} for a global temporal split).
    context: dict = field(default_factory=dict)


@dataclass
class Recommender:
    """A named configuration of the serving pipeline."""

    name: str
    sources: frozenset[str] | None
    scorer: Scorer | None


def only(feature: str) -> BlendScorer:
    return BlendScorer({name: (1.0 if name == feature else 0.0) for name in FEATURES})


def baselines(learned: Scorer | None = None) -> list[Recommender]:
    """Popular, co-occurrence, text-only (active space) and the full pipeline."""
    configs = [
        Recommender("popular", frozenset({"popular"}), only("popularity")),
        Recommender("co-occurrence", frozenset({"co_occurrence"}), only("cooccurrence")),
        Recommender("text", frozenset({"history"}), only("similarity")),
        Recommender("full", None, BlendScorer()),
    ]
    if learned is not None:
        configs.append(Recommender("full+learned", None, learned))
    return configs


def leave_one_out(
    *, max_users: int | None, seed: int = 0, min_rating: float | None = None, offset: int = 0
) -> list[Case]:
    """Each user's last engaged event is held out; the cut is its time.

    ``offset`` 1 holds out the one before the last instead (training data for the learned
    ranker, so that it never sees the events the evaluation holds out).
    """
    events = (
        Behaviour.objects.filter(behaviour.positive_q(min_rating))
        .order_by("user_id", "-occurred_at", "-pk")
        .values_list("user_id", "pk", "item_id", "occurred_at")
    )
    last: dict[int, tuple[int, int, datetime]] = {}
    counts: Counter[int] = Counter()
    for user_id, pk, item_id, occurred_at in events.iterator(chunk_size=20000):
        if counts[user_id] == offset:
            last[user_id] = (pk, item_id, occurred_at)
        counts[user_id] += 1
    cases = [
        Case(user_id, occurred_at, {item_id}, [pk])
        for user_id, (pk, item_id, occurred_at) in last.items()
        if counts[user_id] >= offset + 2
    ]
    cases = _sample(cases, max_users, seed)
    contexts = dict(
        Behaviour.objects.filter(pk__in=[case.held_out_events[0] for case in cases])
        .order_by()
        .values_list("pk", "context")
    )
    for case in cases:
        case.context = contexts.get(case.held_out_events[0]) or {}
    return cases


def temporal_split(
    before: datetime, *, max_users: int | None, seed: int = 0, min_rating: float | None = None
) -> list[Case]:
    """One global cut: each user's engaged items from ``before`` on are the targets."""
    after = Behaviour.objects.filter(behaviour.positive_q(min_rating), occurred_at__gte=before)
    active_before = set(
        Behaviour.objects.filter(occurred_at__lt=before).values_list("user_id", flat=True)
    )
    targets: dict[int, set[int]] = defaultdict(set)
    held: dict[int, list[int]] = defaultdict(list)
    for user_id, pk, item_id in after.values_list("user_id", "pk", "item_id"):
        if user_id in active_before:
            targets[user_id].add(item_id)
            held[user_id].append(pk)
    seen = defaultdict(set)
    for user_id, item_id in Behaviour.objects.filter(
        occurred_at__lt=before, user_id__in=list(targets), item__isnull=False
    ).values_list("user_id", "item_id"):
        seen[user_id].add(item_id)
    cases = []
    for user_id, items in targets.items():
        fresh = items - seen[user_id]  # full ranking excludes seen items: they cannot hit
        if fresh:
            cases.append(Case(user_id, before, fresh, held[user_id]))
    return _sample(cases, max_users, seed)


def _sample(cases: list[Case], max_users: int | None, seed: int) -> list[Case]:
    cases.sort(key=lambda case: case.user_id)
    if max_users is not None and len(cases) > max_users:
        cases = random.Random(seed).sample(cases, max_users)
        cases.sort(key=lambda case: case.user_id)
    return cases


# --- Metrics -------------------------------------------------------------------------------

# The per-list metrics an evaluation keeps case by case, for paired intervals.
PER_LIST_METRICS = ("ndcg", "hit_rate")


def ranking_metrics(ranked: list[int], targets: set[int], k: int) -> dict[str, float]:
    """Precision, recall, F1, NDCG, MRR and hit rate at ``k`` for one list."""
    top = ranked[:k]
    hits = [index for index, item in enumerate(top) if item in targets]
    precision = len(hits) / k
    recall = len(hits) / len(targets) if targets else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    dcg = sum(1.0 / math.log2(index + 2) for index in hits)
    ideal = sum(1.0 / math.log2(index + 2) for index in range(min(len(targets), k)))
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "ndcg": dcg / ideal if ideal else 0.0,
        "mrr": 1.0 / (hits[0] + 1) if hits else 0.0,
        "hit_rate": 1.0 if hits else 0.0,
    }


@dataclass
class Accumulator:
    """Sums of per-list metrics and the material for list-level ones."""

    ks: list[int]
    sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    lists: int = 0
    recommended: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    ild: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    novelty: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    rec_popularity: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    target_popularity: float = 0.0
    # Each list's NDCG and hit rate at each k, in case order (for paired intervals).
    per_list: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, ranked, targets, vectors, item_counts, n_users) -> None:
        self.lists += 1
        self.target_popularity += float(np.mean([item_counts.get(t, 0) for t in targets]))
        for k in self.ks:
            for name, value in ranking_metrics(ranked, targets, k).items():
                self.sums[f"{name}@{k}"] += value
                if name in PER_LIST_METRICS:
                    self.per_list[f"{name}@{k}"].append(value)
            top = ranked[:k]
            self.recommended[k].update(top)
            usable = [vectors[i] for i in top if i in vectors]
            self.ild[k] += intra_list_distance(usable)
            if top:
                self.novelty[k] += float(
                    np.mean([-math.log2((item_counts.get(i, 0) + 1) / (n_users + 1)) for i in top])
                )
                self.rec_popularity[k] += float(np.mean([item_counts.get(i, 0) for i in top]))

    def result(self, active_items: int) -> dict[str, float]:
        n = max(self.lists, 1)
        out = {name: value / n for name, value in self.sums.items()}
        for k in self.ks:
            out[f"coverage@{k}"] = len(self.recommended[k]) / max(active_items, 1)
            out[f"ild@{k}"] = self.ild[k] / n
            out[f"novelty@{k}"] = self.novelty[k] / n
            out[f"popularity@{k}"] = self.rec_popularity[k] / n
        out["target_popularity"] = self.target_popularity / n
        out["lists"] = self.lists
        return out


@dataclass
class EvaluationReport:
    protocol: str
    ks: list[int]
    cases: int
    overall: dict[str, dict[str, float]]
    cold_start: dict[str, dict[str, float]]
    cold_threshold: int
    space: str | None
    seconds: float
    # Recommender → metric → one value per case (``PER_LIST_METRICS`` at each k, overall).
    per_list: dict[str, dict[str, list[float]]] = field(default_factory=dict)


class _Rollback(Exception):
    """Raised to undo the evaluation's temporary writes."""


def evaluate(
    cases: list[Case],
    *,
    protocol: str,
    ks: Iterable[int] = (10,),
    recommenders: list[Recommender] | None = None,
    cold_threshold: int = 5,
    progress: Callable[[int], None] | None = None,
) -> EvaluationReport:
    """Run every recommender on every case; metrics overall and on cold-start targets."""
    ks = sorted(set(ks))
    depth = max(ks)
    recommenders = recommenders or baselines()
    started = time.perf_counter()
    held_out = [pk for case in cases for pk in case.held_out_events]
    space = spaces.current_space()
    overall = {r.name: Accumulator(ks) for r in recommenders}
    cold = {r.name: Accumulator(ks) for r in recommenders}
    try:
        with transaction.atomic(), profiles.memoize_past_profiles():
            # Co-occurrence as the training data alone would have produced it.
            as_of = max((case.as_of for case in cases), default=None)
            cooccurrence.refresh_cooccurrence(as_of=as_of, exclude_events=held_out)
            item_counts = _training_counts(held_out)
            n_users = EndUser.objects.count()
            users = EndUser.objects.in_bulk([case.user_id for case in cases])
            for case in cases:
                ranked_by = {}
                for config in recommenders:
                    results = pipeline.recommend(
                        pipeline.RecommendationRequest(
                            user=users[case.user_id],
                            k=depth,
                            as_of=case.as_of,
                            context=case.context,
                            explain=False,
                            sources=config.sources,
                            scorer=config.scorer,
                        )
                    )
                    ranked_by[config.name] = [r.item.pk for r in results]
                listed = {i for ranked in ranked_by.values() for i in ranked}
                vectors = _unit_vectors(space, listed)
                is_cold = any(item_counts.get(t, 0) < cold_threshold for t in case.targets)
                for name, ranked in ranked_by.items():
                    overall[name].add(ranked, case.targets, vectors, item_counts, n_users)
                    if is_cold:
                        cold[name].add(ranked, case.targets, vectors, item_counts, n_users)
                if progress:
                    progress(1)
            raise _Rollback
    except _Rollback:
        pass
    active = Item.objects.filter(is_active=True).count()
    return EvaluationReport(
        protocol=protocol,
        ks=ks,
        cases=len(cases),
        overall={name: acc.result(active) for name, acc in overall.items()},
        cold_start={name: acc.result(active) for name, acc in cold.items() if acc.lists},
        cold_threshold=cold_threshold,
        space=space.name if space else None,
        seconds=time.perf_counter() - started,
        per_list={name: dict(acc.per_list) for name, acc in overall.items()},
    )


@dataclass
class Difference:
    """``b`` minus ``a`` on one metric over the same cases, with a 95% bootstrap interval."""

    metric: str
    a: float
    b: float
    difference: float
    low: float
    high: float
    cases: int


def paired_difference(
    report: EvaluationReport,
    a: str,
    b: str,
    metric: str = "ndcg@10",
    *,
    samples: int = 10000,
    seed: int = 0,
) -> Difference:
    """How much recommender ``b`` beats ``a`` on ``metric`` (e.g. ``ndcg@10``): the mean
    per-case difference and its 95% percentile interval from a paired bootstrap over the
    cases (both ran on every case, so the pairing removes the cases' own difficulty)."""
    first = np.asarray(report.per_list[a][metric], dtype=np.float64)
    second = np.asarray(report.per_list[b][metric], dtype=np.float64)
    if not len(first):
        return Difference(metric, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    deltas = second - first
    rng = np.random.default_rng(seed)
    means = deltas[rng.integers(0, len(deltas), size=(samples, len(deltas)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Difference(
        metric=metric,
        a=float(first.mean()),
        b=float(second.mean()),
        difference=float(deltas.mean()),
        low=float(low),
        high=float(high),
        cases=len(deltas),
    )


def _training_counts(held_out: list[int]) -> dict[int, int]:
    """Distinct users per item in the training data (everything but the held-out events)."""
    rows = (
        Behaviour.objects.filter(item__isnull=False)
        .exclude(pk__in=held_out)
        .order_by()  # no default ordering, or its column joins the DISTINCT
        .values_list("item_id", "user_id")
        .distinct()
    )
    counts: Counter[int] = Counter()
    for item_id, _ in rows.iterator(chunk_size=50000):
        counts[item_id] += 1
    return dict(counts)


def _unit_vectors(space, ids) -> dict[int, np.ndarray]:
    if space is None:
        return {}
    out = {}
    for item_id, vector in profiles.item_vectors(space, ids).items():
        norm = float(np.linalg.norm(vector))
        if norm > 0:
            out[item_id] = vector / norm
    return out
