"""Classical recommenders computed outside the serving code, as the bar the pipeline is
measured against (issue 19, item 5).

Pure numpy/scipy over an event log held as arrays and, for the text baseline, item
vectors as a matrix. Four recommenders:

- ``ease``: EASE (Steck 2019), the closed-form item-item ridge regression
  ``B = I - P / diag(P)`` with ``P = (XᵀX + λI)⁻¹`` and a zero diagonal; λ tuned on the
  validation target.
- ``transitions``: order-aware item-to-item transitions. For every training sequence,
  each item "leads to" the next ``window`` items (weight 1/distance); rows are normalised
  into P(next | item); a user's score is the sum over their last ``last`` items, the most
  recent weighted 1, the one before ``decay``, and so on.
- ``text``: the mean of the last ``last`` items' unit vectors (weights ``decay``^age),
  scored by cosine against every item.
- ``blend``: the three z-scored per user (over the items not yet seen) and summed with
  weights found by a grid search on the validation target.

Protocol (leave-one-out by time, as ``manage.py evaluate`` runs it): the test target is
each user's last positive event (ties in time broken by storage order), the validation
target the one before it. Models see every user's events strictly before that user's cut
(and all events of users without one); the user's history is their own events before the
cut. Full ranking over every item, items with any event before the cut excluded. Metrics
at 10: NDCG, recall (= hit rate: one target), MAP (= reciprocal rank: one target), and
recall on the cold slice (targets with fewer than ``cold_threshold`` training users), each
with a 95 % percentile bootstrap interval over users.

Standalone:  .venv/bin/python benchmarks/quality_baselines.py --dataset movielens
                 [--vectors items.npz] [--out results.json]
``items.npz`` holds ``item_ids`` and ``vectors`` (``benchmarks/quality.py`` writes one from
the project's active encoder space); without it the text baseline and the blend's text
part are left out.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import linalg, sparse

MODELS = ("ease", "transitions", "text")


@dataclass
class Interactions:
    """An event log as arrays, one entry per event, in storage order (the tie-breaker
    between events at the same second)."""

    user: np.ndarray  # int: index into user_ids
    item: np.ndarray  # int: index into item_ids
    time: np.ndarray  # float: seconds
    positive: np.ndarray  # bool: may be a target (an engagement, a rating from the threshold)
    user_ids: list[str]
    item_ids: list[str]

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)


@dataclass
class Split:
    """One held-out target per evaluated user and what the models may learn from."""

    users: np.ndarray  # evaluated users, ascending
    targets: np.ndarray  # the held-out item of each evaluated user
    histories: list[np.ndarray]  # each evaluated user's events before the cut, oldest first
    seen: sparse.csr_matrix  # evaluated users × items: an event before the cut
    train: sparse.csr_matrix  # all users × items: 1 where a training event exists
    sequences: list[np.ndarray]  # every user's training events in time order
    train_users: np.ndarray  # per item: distinct users with a training event
    n_items: int


def leave_one_out(
    data: Interactions,
    *,
    offset: int = 0,
    implicit: str = "positive",
    users: Sequence[int] | None = None,
) -> Split:
    """Hold out each user's last positive event (``offset`` 1: the one before it, for
    validation; the last one is then hidden as well).

    ``implicit`` says which events the models learn from and histories hold: ``positive``
    (engagements) or ``all`` (every event with an item, a low rating too). ``users``
    restricts the evaluated users (the sample ``evaluate`` drew); training is unchanged.
    """
    if implicit not in ("positive", "all"):
        raise ValueError(f"implicit: {implicit!r} is neither 'positive' nor 'all'")
    order = np.lexsort((np.arange(len(data.user)), data.time, data.user))
    user, item, when = data.user[order], data.item[order], data.time[order]
    positive = data.positive[order]
    learn = positive if implicit == "positive" else np.ones_like(positive)
    bounds = np.flatnonzero(np.diff(user)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(user)]))
    wanted = None if users is None else set(int(u) for u in users)

    keep = np.zeros(len(user), dtype=bool)  # training events
    sequences: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * data.n_users
    case_users, targets, histories, seen_rows = [], [], [], []
    for start, end in zip(starts, ends, strict=True):
        u = int(user[start])
        pos = np.flatnonzero(positive[start:end]) + start
        cut = math.inf
        if len(pos) >= 2:  # the test target stays hidden in every split
            cut = when[pos[-1]]
        is_case = len(pos) >= offset + 2
        if is_case:
            target_at = pos[-1 - offset]
            cut = when[target_at]
        before = np.arange(start, end)[when[start:end] < cut]
        keep[before] = True
        sequences[u] = item[before][learn[before]]
        if is_case and (wanted is None or u in wanted):
            case_users.append(u)
            targets.append(int(item[target_at]))
            histories.append(sequences[u])
            seen_rows.append(np.unique(item[before]))

    train_rows, train_cols = user[keep & learn], item[keep & learn]
    train = sparse.csr_matrix(
        (np.ones(len(train_rows), dtype=np.float64), (train_rows, train_cols)),
        shape=(data.n_users, data.n_items),
    )
    train.data[:] = 1.0  # repeated events count once
    pairs = np.unique(np.stack([user[keep], item[keep]]), axis=1)
    train_users = np.bincount(pairs[1], minlength=data.n_items)
    seen = sparse.csr_matrix(
        (
            np.ones(sum(len(r) for r in seen_rows), dtype=bool),
            (
                np.repeat(np.arange(len(seen_rows)), [len(r) for r in seen_rows]),
                np.concatenate(seen_rows) if seen_rows else np.empty(0, dtype=np.int64),
            ),
        ),
        shape=(len(seen_rows), data.n_items),
    )
    return Split(
        users=np.array(case_users, dtype=np.int64),
        targets=np.array(targets, dtype=np.int64),
        histories=histories,
        seen=seen,
        train=train,
        sequences=sequences,
        train_users=train_users,
        n_items=data.n_items,
    )


# --- Models ---------------------------------------------------------------------------------


@dataclass
class Ease:
    """EASE's item-item weights over the items with a training event (the others have no
    row or column in the Gram matrix but the ridge, so their weights are zero)."""

    items: np.ndarray
    weights: np.ndarray


def ease_fit(train: sparse.spmatrix, l2: float) -> Ease:
    """EASE's item-item matrix: ``B = I - P / diag(P)``, ``P = (XᵀX + λI)⁻¹``, diag 0.

    The inverse goes through a Cholesky factorisation (the Gram matrix is symmetric
    positive definite), a third of the work of a general inverse, in single precision
    (with λ ≥ 1 the matrix is well conditioned; about half the time of double precision)."""
    train = sparse.csc_matrix(train, dtype=np.float32)
    items = np.flatnonzero(np.diff(train.indptr))
    binary = train[:, items]
    gram = np.asarray((binary.T @ binary).toarray(), dtype=np.float32)
    gram[np.diag_indices_from(gram)] += l2
    factor, info = linalg.lapack.spotrf(gram, lower=False, overwrite_a=True)
    if info:
        raise np.linalg.LinAlgError(f"EASE: Gram matrix not positive definite ({info})")
    inverse, info = linalg.lapack.spotri(factor, lower=False, overwrite_c=True)
    if info:
        raise np.linalg.LinAlgError(f"EASE: inversion failed ({info})")
    upper = np.triu(inverse, 1)  # spotri fills the upper triangle only
    inverse = np.triu(inverse)
    inverse += upper.T
    del upper
    weights = -inverse / np.diag(inverse)[np.newaxis, :]
    np.fill_diagonal(weights, 0.0)
    return Ease(items, weights)


def ease_scores(split: Split, model: Ease) -> np.ndarray:
    """Each evaluated user's training row times EASE's weights."""
    rows = split.train[split.users][:, model.items].astype(np.float32)
    scores = np.zeros((len(split.users), split.n_items), dtype=np.float64)
    scores[:, model.items] = rows @ model.weights
    return scores


def transition_matrix(sequences: Sequence[np.ndarray], n_items: int, window: int = 3):
    """P(b | a) from "b came within ``window`` events after a" (weight 1/distance)."""
    rows, cols, vals = [], [], []
    for sequence in sequences:
        for distance in range(1, window + 1):
            if len(sequence) > distance:
                rows.append(sequence[:-distance])
                cols.append(sequence[distance:])
                vals.append(np.full(len(sequence) - distance, 1.0 / distance))
    if not rows:
        return sparse.csr_matrix((n_items, n_items))
    counts = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
    )
    counts = (counts - sparse.diags(counts.diagonal())).tocsr()  # no item leads to itself
    counts.eliminate_zeros()
    totals = np.asarray(counts.sum(axis=1)).ravel()
    totals[totals == 0] = 1.0
    return sparse.diags(1.0 / totals) @ counts


def recent_weights(histories: Sequence[np.ndarray], n_items: int, last: int, decay: float):
    """Users × items: the last ``last`` items of each history, weighted ``decay``^age
    (the most recent 1)."""
    rows, cols, vals = [], [], []
    for row, history in enumerate(histories):
        recent = history[-last:][::-1]  # most recent first
        rows.append(np.full(len(recent), row))
        cols.append(recent)
        vals.append(decay ** np.arange(len(recent), dtype=np.float64))
    if not rows:
        return sparse.csr_matrix((0, n_items))
    return sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(histories), n_items),
    )  # duplicates add up: an item seen twice lately counts more


def transition_scores(
    split: Split, *, window: int = 3, last: int = 5, decay: float = 0.7
) -> np.ndarray:
    """Sum of P(item | recent item) over each user's last ``last`` items."""
    matrix = transition_matrix(split.sequences, split.n_items, window)
    recent = recent_weights(split.histories, split.n_items, last, decay)
    return np.asarray((recent @ matrix).toarray(), dtype=np.float64)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def text_scores(
    split: Split, vectors: np.ndarray, *, last: int = 5, decay: float = 0.7
) -> np.ndarray:
    """Cosine of every item to the decayed mean of each user's last ``last`` item vectors."""
    unit = unit_rows(np.asarray(vectors, dtype=np.float64))
    recent = recent_weights(split.histories, split.n_items, last, decay)
    profiles = unit_rows(np.asarray(recent @ unit))
    return profiles @ unit.T


def zscores(scores: np.ndarray, seen: sparse.spmatrix) -> np.ndarray:
    """Each row standardised over the items not yet seen (a constant row becomes 0)."""
    mask = ~seen.toarray()
    counts = np.maximum(mask.sum(axis=1, keepdims=True), 1)
    mean = np.where(mask, scores, 0.0).sum(axis=1, keepdims=True) / counts
    var = np.where(mask, (scores - mean) ** 2, 0.0).sum(axis=1, keepdims=True) / counts
    std = np.sqrt(var)
    return np.divide(scores - mean, std, out=np.zeros_like(scores), where=std > 0)


def blend(zscored: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """The weighted sum of z-scored models."""
    total = None
    for name, weight in weights.items():
        if weight:
            part = weight * zscored[name]
            total = part if total is None else total + part
    if total is None:
        return np.zeros_like(next(iter(zscored.values())))
    return total


def weight_grid(names: Sequence[str], step: float = 0.1) -> list[dict[str, float]]:
    """Every weighting of ``names`` on the simplex with the given step."""
    units = round(1 / step)
    grid = []
    for parts in itertools.product(range(units + 1), repeat=len(names)):
        if sum(parts) == units:
            grid.append({name: part / units for name, part in zip(names, parts, strict=True)})
    return grid


# --- Metrics --------------------------------------------------------------------------------


def target_ranks(scores: np.ndarray, targets: np.ndarray, seen: sparse.spmatrix) -> np.ndarray:
    """0-based rank of each target in its row's full ranking, seen items removed; ties go
    to the lower item index. A seen target cannot be recommended: its rank is ``n_items``."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    mask = seen.toarray()
    scores[mask] = -np.inf
    rows = np.arange(len(targets))
    own = scores[rows, targets][:, np.newaxis]
    columns = np.arange(scores.shape[1])[np.newaxis, :]
    ranks = (scores > own).sum(axis=1) + ((scores == own) & (columns < targets[:, None])).sum(
        axis=1
    )
    ranks[mask[rows, targets]] = scores.shape[1]
    return ranks


def per_user_metrics(ranks: np.ndarray, k: int = 10) -> dict[str, np.ndarray]:
    """NDCG, recall and MAP at ``k`` of each user, from the rank of their single target."""
    hit = ranks < k
    return {
        f"ndcg@{k}": np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0),
        f"recall@{k}": hit.astype(np.float64),
        f"map@{k}": np.where(hit, 1.0 / (ranks + 1.0), 0.0),
    }


def bootstrap_interval(
    values: np.ndarray, *, samples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampling users)."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(samples, len(values)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return (float(low), float(high))


@dataclass
class Estimate:
    """A mean over users with its 95 % bootstrap interval."""

    mean: float
    low: float
    high: float
    users: int

    def __str__(self) -> str:
        return f"{self.mean:.4f} [{self.low:.4f}, {self.high:.4f}]"


def estimate(values: np.ndarray, *, samples: int = 2000, seed: int = 0) -> Estimate:
    values = np.asarray(values, dtype=np.float64)
    low, high = bootstrap_interval(values, samples=samples, seed=seed)
    mean = float(values.mean()) if len(values) else math.nan
    return Estimate(mean, low, high, len(values))


def summarise(
    per_user: dict[str, np.ndarray], cold: np.ndarray, *, k: int = 10, samples: int = 2000
) -> dict[str, Estimate]:
    """The headline metrics with intervals: NDCG, recall, MAP and cold-slice recall."""
    out = {name: estimate(values, samples=samples) for name, values in per_user.items()}
    out[f"cold_recall@{k}"] = estimate(per_user[f"recall@{k}"][cold], samples=samples)
    return out


# --- The whole run --------------------------------------------------------------------------


@dataclass
class BaselineReport:
    """Test-target metrics of every baseline, the tuned settings and what each step took."""

    k: int
    users: list[int]  # evaluated users (indices into Interactions.user_ids), ascending
    cold: list[bool]  # per evaluated user: the target is in the cold slice
    cold_threshold: int
    metrics: dict[str, dict[str, Estimate]]
    per_user: dict[str, dict[str, list[float]]]  # recommender → metric → per user
    validation: dict[str, float]  # validation NDCG@k of each model and of the tuned blend
    settings: dict[str, object]
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def run(
    data: Interactions,
    vectors: np.ndarray | None = None,
    *,
    users: Sequence[int] | None = None,
    k: int = 10,
    implicit: str = "positive",
    l2_grid: Sequence[float] = (10.0, 30.0, 100.0, 300.0),
    window: int = 3,
    last: int = 5,
    decay: float = 0.7,
    weight_step: float = 0.1,
    cold_threshold: int = 3,
    samples: int = 2000,
) -> BaselineReport:
    """Tune on the validation target, then score every baseline on the test target.

    ``vectors``: one row per item of ``data.item_ids`` (zeros where an item has none);
    without it there is no text baseline."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    test = leave_one_out(data, offset=0, implicit=implicit, users=users)
    valid = leave_one_out(data, offset=1, implicit=implicit)
    seconds["split"] = time.perf_counter() - started
    names = [name for name in MODELS if name != "text" or vectors is not None]

    def validation_ndcg(scores: np.ndarray) -> float:
        ranks = target_ranks(scores, valid.targets, valid.seen)
        return float(per_user_metrics(ranks, k)[f"ndcg@{k}"].mean())

    validation: dict[str, float] = {}
    valid_scores: dict[str, np.ndarray] = {}
    test_scores: dict[str, np.ndarray] = {}

    started = time.perf_counter()
    best = None
    for l2 in l2_grid:
        scores = ease_scores(valid, ease_fit(valid.train, l2))
        ndcg = validation_ndcg(scores)
        validation[f"ease(l2={l2:g})"] = ndcg
        if best is None or ndcg > best[0]:
            best = (ndcg, l2, scores)
    assert best is not None, "l2_grid is empty"
    _, l2, valid_scores["ease"] = best
    validation["ease"] = best[0]
    test_scores["ease"] = ease_scores(test, ease_fit(test.train, l2))
    seconds["ease"] = time.perf_counter() - started

    started = time.perf_counter()
    options = {"window": window, "last": last, "decay": decay}
    valid_scores["transitions"] = transition_scores(valid, **options)
    test_scores["transitions"] = transition_scores(test, **options)
    validation["transitions"] = validation_ndcg(valid_scores["transitions"])
    seconds["transitions"] = time.perf_counter() - started

    if vectors is not None:
        started = time.perf_counter()
        valid_scores["text"] = text_scores(valid, vectors, last=last, decay=decay)
        test_scores["text"] = text_scores(test, vectors, last=last, decay=decay)
        validation["text"] = validation_ndcg(valid_scores["text"])
        seconds["text"] = time.perf_counter() - started

    started = time.perf_counter()
    valid_z = {name: zscores(valid_scores[name], valid.seen) for name in names}
    tuned = None
    for weights in weight_grid(names, weight_step):
        ndcg = validation_ndcg(blend(valid_z, weights))
        if tuned is None or ndcg > tuned[0]:
            tuned = (ndcg, weights)
    assert tuned is not None
    validation["blend"], weights = tuned
    test_z = {name: zscores(test_scores[name], test.seen) for name in names}
    test_scores["blend"] = blend(test_z, weights)
    seconds["blend"] = time.perf_counter() - started

    cold = test.train_users[test.targets] < cold_threshold
    per_user, metrics = {}, {}
    for name, scores in test_scores.items():
        values = per_user_metrics(target_ranks(scores, test.targets, test.seen), k)
        per_user[name] = {metric: v.tolist() for metric, v in values.items()}
        metrics[name] = summarise(values, cold, k=k, samples=samples)
    return BaselineReport(
        k=k,
        users=test.users.tolist(),
        cold=cold.tolist(),
        cold_threshold=cold_threshold,
        metrics=metrics,
        per_user=per_user,
        validation=validation,
        settings={
            "implicit": implicit,
            "l2": l2,
            "l2_grid": list(l2_grid),
            "window": window,
            "last": last,
            "decay": decay,
            "blend_weights": weights,
            "weight_step": weight_step,
            "validation_users": len(valid.users),
        },
        seconds=seconds,
    )


def vectors_for(item_ids: Sequence[str], saved_ids: Sequence[str], saved: np.ndarray):
    """``saved`` rows re-ordered to ``item_ids`` (zeros for items without a vector)."""
    position = {item: i for i, item in enumerate(saved_ids)}
    out = np.zeros((len(item_ids), saved.shape[1]), dtype=np.float64)
    for row, item in enumerate(item_ids):
        if item in position:
            out[row] = saved[position[item]]
    return out


def table(metrics: dict[str, dict[str, Estimate]], k: int = 10) -> str:
    """A Markdown table: one row per recommender, means with 95 % intervals."""
    columns = [f"ndcg@{k}", f"recall@{k}", f"map@{k}", f"cold_recall@{k}"]
    lines = [
        "| recommender | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name, values in metrics.items():
        cells = [str(values[c]) if c in values else "–" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    import argparse
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks import datasets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="movielens", choices=sorted(datasets.DATASETS))
    parser.add_argument("--data", type=Path, help="the dataset folder (default: ../shared/data)")
    parser.add_argument("--vectors", type=Path, help="an .npz with item_ids and vectors")
    parser.add_argument("--implicit", choices=("positive", "all"), default="positive")
    parser.add_argument("--min-rating", type=float, default=datasets.POSITIVE_RATING)
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    args = parser.parse_args(argv)

    dataset = datasets.get(args.dataset, args.data)
    data = dataset.interactions(args.min_rating)
    vectors = None
    if args.vectors:
        saved = np.load(args.vectors, allow_pickle=False)
        vectors = vectors_for(data.item_ids, [str(i) for i in saved["item_ids"]], saved["vectors"])
    report = run(data, vectors, implicit=args.implicit)
    print(f"{dataset.name}: {len(report.users)} users, {sum(report.cold)} cold targets")
    print(table(report.metrics, report.k))
    print("validation NDCG@10:", ", ".join(f"{n} {v:.4f}" for n, v in report.validation.items()))
    print("settings:", report.settings)
    print("seconds:", ", ".join(f"{n} {s:.1f}" for n, s in report.seconds.items()))
    if args.out:
        args.out.write_text(json.dumps(report.to_json(), indent=2))


if __name__ == "__main__":
    main()
