"""Offline evaluation: protocols that hold out what users did next, and ranking metrics.

The recommender under test is the serving code itself (``pipeline.recommend``) with
``as_of`` set to each case's cut, so it only sees what was known then. Baselines are the
same pipeline restricted to one candidate source; other code adds recommenders by name
(``register``). Everything the evaluation writes (co-occurrence recomputed without the
held-out events) happens inside a transaction that is rolled back (``replay``), so a live
site is left as it was.

Two leave-one-out splits (``split``): ``"test"`` holds out each user's last positive
event, ``"validation"`` the one before it (and keeps the last one out of everything).
Choose weights, pool sizes or models on the validation split; report the test split.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
from django.db import transaction

from recommender import behaviour, spaces
from recommender.learning import bootstrap
from recommender.learning.bootstrap import Interval
from recommender.models import Behaviour, EndUser, Item, Scenario
from recommender.serving import behaviour_models, cooccurrence, pipeline, profiles
from recommender.serving.learned import load_latest_scorer
from recommender.serving.ranking import FEATURES, BlendScorer, Scorer, intra_list_distance


@dataclass
class Case:
    """One user at one moment: what they did next is hidden from the recommender.

    The training data of a case is everything before ``as_of``. A model shared by all
    cases (co-occurrence, a behaviour model) trains on events before the latest cut
    without any case's ``excluded_events`` (``training_events``).
    """

    user_id: int
    as_of: datetime  # the cut: the target's time
    targets: set[int]
    held_out_events: list[int] = field(default_factory=list)
    # The context the held-out event was sent with (device, page …): the request context of
    # the list the user would have been shown then ({} for a global temporal split).
    context: dict = field(default_factory=dict)
    # The user's other events from the cut on: on the validation split the test target
    # is among them. Never training data either.
    later_events: list[int] = field(default_factory=list)

    @property
    def excluded_events(self) -> list[int]:
        """Behaviour ids no model may learn from for this case: the target and later ones."""
        return [*self.held_out_events, *self.later_events]


# --- Splits --------------------------------------------------------------------------------

# A split's name → which positive event from the end it holds out (0: the last).
SPLITS = {"test": 0, "validation": 1}


def split(
    name: str = "test",
    *,
    max_users: int | None = None,
    seed: int = 0,
    min_rating: float | None = None,
) -> list[Case]:
    """The leave-one-out cases of split ``name``, one per eligible user.

    ``"test"``: each user's last positive event is the target (users with at least two
    positive events). ``"validation"``: the second-to-last is the target (users with at
    least three, so there is training data before it), and the last one is excluded from
    training like the target (``Case.later_events``), so tuning never sees the test split.
    ``max_users`` samples that many cases (seeded); None or 0 keeps every user.
    """
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; choose from {', '.join(SPLITS)}")
    return leave_one_out(max_users=max_users, seed=seed, min_rating=min_rating, offset=SPLITS[name])


def leave_one_out(
    *, max_users: int | None, seed: int = 0, min_rating: float | None = None, offset: int = 0
) -> list[Case]:
    """Each user's last engaged event is held out; the cut is its time.

    ``offset`` 1 holds out the one before the last instead (the validation split; training
    data for the learned ranker, so that it never sees the events the evaluation holds
    out). A user needs ``offset`` + 2 positive events. ``max_users`` None or 0: every user.
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
    _add_later_events(cases)
    return cases


def _add_later_events(cases: list[Case]) -> None:
    """Fill each case's ``later_events``: the user's events at or after the cut."""
    if not cases:
        return
    by_user = {case.user_id: case for case in cases}
    rows = (
        Behaviour.objects.filter(
            user_id__in=list(by_user), occurred_at__gte=min(case.as_of for case in cases)
        )
        .order_by()
        .values_list("user_id", "pk", "occurred_at")
    )
    for user_id, pk, occurred_at in rows.iterator(chunk_size=20000):
        case = by_user[user_id]
        if occurred_at >= case.as_of and pk not in case.held_out_events:
            case.later_events.append(pk)
    for case in cases:
        case.later_events.sort()


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
    if max_users and len(cases) > max_users:  # None or 0: every case
        cases = random.Random(seed).sample(cases, max_users)
        cases.sort(key=lambda case: case.user_id)
    return cases


def training_events(cases: list[Case]):
    """The behaviours a model shared by all ``cases`` may learn from: those before the
    latest cut, less every case's excluded events (its target and what came after)."""
    events = Behaviour.objects.all()
    if cases:
        events = events.filter(occurred_at__lt=max(case.as_of for case in cases))
    excluded = [pk for case in cases for pk in case.excluded_events]
    return events.exclude(pk__in=excluded) if excluded else events


@contextmanager
def replay(cases: list[Case], models: Iterable[str] | None = None) -> Iterator[None]:
    """The site as the cases' training data left it, for the duration of the block:
    co-occurrence rebuilt without their excluded events, "as of" profiles memoised, and
    the behaviour models ``models`` (None: those the site has trained) retrained without
    them and served instead of the saved ones. Every write is rolled back on exit, so a
    live site is left as it was."""
    excluded = [pk for case in cases for pk in case.excluded_events]
    as_of = max((case.as_of for case in cases), default=None)
    retrained = replay_models(excluded, models, before=as_of)
    with (
        transaction.atomic(),
        profiles.memoize_past_profiles(),
        behaviour_models.replaying(retrained),
    ):
        cooccurrence.refresh_cooccurrence(as_of=as_of, exclude_events=excluded)
        try:
            yield
        finally:
            transaction.set_rollback(True)


def replay_models(
    excluded: list[int],
    models: Iterable[str] | None = None,
    *,
    before: datetime | None = None,
    seed: int = 0,
) -> dict[str, behaviour_models.BehaviourModel]:
    """Behaviour models trained on the behaviour log less the ``excluded`` events (and
    events from ``before`` on): what an offline replay serves, so that no held-out event
    reaches a list through a model that learned it. ``models`` None: the ones the site has
    trained (saved); a model with nothing to learn from is left out."""
    from recommender.learning import behaviour_models as training

    names = list(behaviour_models.load_all()) if models is None else list(models)
    if not names:
        return {}
    interactions = training.read_interactions(exclude_events=excluded, before=before)
    if not interactions:
        return {}
    out = {}
    for name in names:
        if name == "sasrec":
            trained = training.train_sasrec(training.sequences(interactions), seed=seed)
        elif name == "als":
            trained = training.train_als(interactions, seed=seed)
        elif name == "ease":
            trained = training.train_ease(interactions)
        else:
            raise ValueError(f"unknown behaviour model {name!r}")
        out[name] = trained.serving()
    return out


# --- Recommenders --------------------------------------------------------------------------


@dataclass
class Recommender:
    """A named configuration of the serving pipeline, or a model that ranks by itself.

    A pipeline configuration restricts the candidate ``sources`` (None: all) and scores
    with ``scorer``. A behaviour model (EASE, ALS …) sets ``rank`` instead: it returns a
    case's list of item ids, best first, from data before ``case.as_of`` only; ``fit`` is
    called once with every case before ranking, inside ``replay`` (train it there on
    ``training_events(cases)``).
    """

    name: str
    sources: frozenset[str] | None = None
    scorer: Scorer | None = None
    rank: Callable[[Case, int], list[int]] | None = None
    fit: Callable[[list[Case]], None] | None = None


# A factory builds its recommender, or returns None when it cannot run here (no trained
# model): then the default selection leaves it out, and naming it is an error.
RecommenderFactory = Callable[[], Recommender | None]


@dataclass(frozen=True)
class _Registered:
    factory: RecommenderFactory
    default: bool
    description: str


_REGISTRY: dict[str, _Registered] = {}


class UnknownRecommender(LookupError):
    """A name no recommender is registered under, or one that cannot run here."""


def register(
    name: str, *, default: bool = True, description: str = ""
) -> Callable[[RecommenderFactory], RecommenderFactory]:
    """Decorator: register ``factory`` as the recommender ``name``. ``default``: evaluated
    when no names are given (leave slow models out of the default run)."""

    def decorate(factory: RecommenderFactory) -> RecommenderFactory:
        _REGISTRY[name] = _Registered(factory, default, description)
        return factory

    return decorate


def registered() -> dict[str, str]:
    """Every registered name → its description, in registration order."""
    return {name: entry.description for name, entry in _REGISTRY.items()}


def recommenders(names: Iterable[str] | None = None) -> list[Recommender]:
    """The recommenders ``names`` asks for, in that order; None: every default one that
    can run here. Raises ``UnknownRecommender`` naming the first bad name."""
    if names is None:
        built = ((name, entry.factory()) for name, entry in _REGISTRY.items() if entry.default)
        return [replace(r, name=name) for name, r in built if r is not None]
    out = []
    for name in names:
        if name not in _REGISTRY:
            raise UnknownRecommender(
                f"unknown recommender {name!r} (choose from {', '.join(_REGISTRY)})"
            )
        built = _REGISTRY[name].factory()
        if built is None:
            raise UnknownRecommender(f"{name!r} cannot run here: {_REGISTRY[name].description}")
        out.append(replace(built, name=name))
    return out


def only(feature: str) -> BlendScorer:
    return BlendScorer({name: (1.0 if name == feature else 0.0) for name in FEATURES})


@register("popular", description="popular items, scored by popularity")
def _popular() -> Recommender:
    return Recommender("popular", frozenset({"popular"}), only("popularity"))


@register("co-occurrence", description="items co-engaged with the user's recent items")
def _cooccurrence() -> Recommender:
    return Recommender("co-occurrence", frozenset({"co_occurrence"}), only("cooccurrence"))


@register("text", description="nearest items to the profile vector (active space)")
def _text() -> Recommender:
    return Recommender("text", frozenset({"history"}), only("similarity"))


@register(
    "recent-text",
    description="nearest items to the mean of the user's last few items' vectors (active space)",
)
def _recent_text() -> Recommender:
    return Recommender("recent-text", frozenset({"recent"}), only("recent_similarity"))


def _model_baseline(name: str) -> Recommender | None:
    if behaviour_models.load(name) is None:
        return None  # not trained on this site (manage.py train_models)
    return Recommender(name, frozenset({name}), only(f"{name}_score"))


for _name, _what in (
    ("ease", "EASE item-to-item weights (train_models), retrained without held-out events"),
    ("als", "implicit ALS factors, the user folded in from their history (train_models)"),
    ("sasrec", "SASRec self-attention over the user's last items (train_models)"),
):
    register(_name, description=_what)(lambda name=_name: _model_baseline(name))


@register("full", description="every source, the fixed blend's default weights")
def _full() -> Recommender:
    return Recommender("full", None, BlendScorer())


@register(
    "full+learned",
    description="every source, the newest learned ranker (train one: manage.py train_ranker)",
)
def _full_learned() -> Recommender | None:
    scorer = load_latest_scorer()
    return None if scorer is None else Recommender("full+learned", None, scorer)


@register(
    "full+scenario",
    description="every source, the default scenario's blend weights (manage.py tune stores them)",
)
def _full_scenario() -> Recommender | None:
    scenario = Scenario.objects.filter(is_default=True).first()
    if scenario is None or not scenario.blend_weights:
        return None
    return Recommender("full+scenario", None, BlendScorer(dict(scenario.blend_weights)))


BASELINES = ("popular", "co-occurrence", "text", "recent-text", "full")


def baselines(learned: Scorer | None = None) -> list[Recommender]:
    """Popular, co-occurrence, text-only (active space) and the full pipeline (and the
    full pipeline with ``learned``, when given)."""
    configs = recommenders(BASELINES)
    if learned is not None:
        configs.append(Recommender("full+learned", None, learned))
    return configs


# --- Metrics -------------------------------------------------------------------------------

# The per-list metrics an evaluation keeps case by case, for paired intervals.
PER_LIST_METRICS = ("ndcg", "recall", "map", "hit_rate")
# Those the report gives bootstrap intervals for (at k = 10, else the largest k).
INTERVAL_METRICS = ("ndcg", "recall")


def ranking_metrics(ranked: list[int], targets: set[int], k: int) -> dict[str, float]:
    """Precision, recall, F1, NDCG, MRR, MAP and hit rate at ``k`` for one list.

    MAP@k here is one list's average precision: the precision at each hit's rank, summed
    and divided by min(len(targets), k) (the mean over lists makes it MAP). With a single
    target it equals MRR@k.
    """
    top = ranked[:k]
    hits = [index for index, item in enumerate(top) if item in targets]
    precision = len(hits) / k
    recall = len(hits) / len(targets) if targets else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    dcg = sum(1.0 / math.log2(index + 2) for index in hits)
    ideal = sum(1.0 / math.log2(index + 2) for index in range(min(len(targets), k)))
    precisions = [(found + 1) / (index + 1) for found, index in enumerate(hits)]
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "ndcg": dcg / ideal if ideal else 0.0,
        "mrr": 1.0 / (hits[0] + 1) if hits else 0.0,
        "map": sum(precisions) / min(len(targets), k) if targets else 0.0,
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
    # Each list's ``PER_LIST_METRICS`` at each k, in case order (for paired intervals).
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


# --- Intervals -----------------------------------------------------------------------------


@dataclass
class Comparison:
    """Each recommender's per-user mean with its bootstrap interval, and its paired
    difference to ``reference`` (recommender − reference) over the same users."""

    reference: str
    reference_rule: str  # "named", or "best <metric>"
    metrics: list[str]
    users: int
    resamples: int
    seed: int
    level: float
    means: dict[str, dict[str, Interval]] = field(default_factory=dict)
    differences: dict[str, dict[str, Interval]] = field(default_factory=dict)


def compare(
    per_list: dict[str, dict[str, list[float]]],
    metrics: list[str],
    *,
    reference: str | None = None,
    resamples: int = bootstrap.RESAMPLES,
    seed: int = 0,
    level: float = bootstrap.LEVEL,
) -> Comparison:
    """Bootstrap intervals over users for every recommender of ``per_list`` (name →
    metric → one value per case, cases in the same order): its mean of each of
    ``metrics``, and its paired difference to ``reference`` (None: the one with the best
    mean of the first metric). Every interval resamples the same users (one seed)."""
    if not per_list:
        raise ValueError("nothing to compare: no recommender has per-user scores")
    if reference is not None and reference not in per_list:
        raise ValueError(f"unknown reference {reference!r} (choose from {', '.join(per_list)})")
    rule = "named"
    if reference is None:
        reference = max(per_list, key=lambda name: float(np.mean(per_list[name][metrics[0]])))
        rule = f"best {metrics[0]}"
    options = {"resamples": resamples, "seed": seed, "level": level}
    out = Comparison(
        reference, rule, list(metrics), len(per_list[reference][metrics[0]]), **options
    )
    for name, values in per_list.items():
        out.means[name] = {m: bootstrap.mean_interval(values[m], **options) for m in metrics}
        out.differences[name] = {
            m: bootstrap.paired_interval(per_list[reference][m], values[m], **options)
            for m in metrics
        }
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
    split: str | None = None  # "validation", "test", or None (a temporal split)
    user_ids: list[int] = field(default_factory=list)  # each case's user, in case order
    comparison: Comparison | None = None


def interval_k(ks: Iterable[int]) -> int:
    """The cut-off the intervals are reported at: 10 when evaluated, else the largest."""
    ks = list(ks)
    return 10 if 10 in ks else max(ks)


def evaluate(
    cases: list[Case],
    *,
    protocol: str,
    ks: Iterable[int] = (10,),
    recommenders: list[Recommender] | None = None,
    cold_threshold: int = 5,
    progress: Callable[[int], None] | None = None,
    split: str | None = None,
    reference: str | None = None,
    resamples: int = bootstrap.RESAMPLES,
    seed: int = 0,
) -> EvaluationReport:
    """Run every recommender on every case; metrics overall and on cold-start targets,
    and bootstrap intervals of NDCG and recall against ``reference`` (None: the best)."""
    ks = sorted(set(ks))
    depth = max(ks)
    recommenders = recommenders if recommenders is not None else baselines()
    names = [config.name for config in recommenders]
    if reference is not None and reference not in names:
        raise ValueError(f"unknown reference {reference!r} (choose from {', '.join(names)})")
    started = time.perf_counter()
    excluded = [pk for case in cases for pk in case.excluded_events]
    space = spaces.current_space()
    overall = {r.name: Accumulator(ks) for r in recommenders}
    cold = {r.name: Accumulator(ks) for r in recommenders}
    with replay(cases):
        for config in recommenders:
            if config.fit is not None:
                config.fit(cases)
        item_counts = _training_counts(excluded)
        n_users = EndUser.objects.count()
        users = EndUser.objects.in_bulk([case.user_id for case in cases])
        for case in cases:
            ranked_by = {
                config.name: _ranked(config, case, users[case.user_id], depth)
                for config in recommenders
            }
            listed = {i for ranked in ranked_by.values() for i in ranked}
            vectors = _unit_vectors(space, listed)
            is_cold = any(item_counts.get(t, 0) < cold_threshold for t in case.targets)
            for name, ranked in ranked_by.items():
                overall[name].add(ranked, case.targets, vectors, item_counts, n_users)
                if is_cold:
                    cold[name].add(ranked, case.targets, vectors, item_counts, n_users)
            if progress:
                progress(1)
    active = Item.objects.filter(is_active=True).count()
    per_list = {name: dict(acc.per_list) for name, acc in overall.items()}
    k = interval_k(ks)
    comparison = None
    if cases and per_list:
        comparison = compare(
            per_list,
            [f"{metric}@{k}" for metric in INTERVAL_METRICS],
            reference=reference,
            resamples=resamples,
            seed=seed,
        )
    return EvaluationReport(
        protocol=protocol,
        ks=ks,
        cases=len(cases),
        overall={name: acc.result(active) for name, acc in overall.items()},
        cold_start={name: acc.result(active) for name, acc in cold.items() if acc.lists},
        cold_threshold=cold_threshold,
        space=space.name if space else None,
        seconds=time.perf_counter() - started,
        per_list=per_list,
        split=split,
        user_ids=[case.user_id for case in cases],
        comparison=comparison,
    )


def _ranked(config: Recommender, case: Case, user: EndUser, depth: int) -> list[int]:
    """``config``'s list for ``case``, ``depth`` items deep."""
    if config.rank is not None:
        return list(config.rank(case, depth))[:depth]
    results = pipeline.recommend(
        pipeline.RecommendationRequest(
            user=user,
            k=depth,
            as_of=case.as_of,
            context=case.context,
            explain=False,
            sources=config.sources,
            scorer=config.scorer,
        )
    )
    return [r.item.pk for r in results]


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
    interval = bootstrap.paired_interval(first, second, resamples=samples, seed=seed)
    return Difference(
        metric=metric,
        a=float(first.mean()),
        b=float(second.mean()),
        difference=interval.estimate,
        low=interval.low,
        high=interval.high,
        cases=len(first),
    )


def _training_counts(excluded: list[int]) -> dict[int, int]:
    """Distinct users per item in the training data (everything but the excluded events)."""
    rows = (
        Behaviour.objects.filter(item__isnull=False)
        .exclude(pk__in=excluded)
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
