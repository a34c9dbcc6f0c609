"""A ranker learned from the site's own behaviours: logistic regression or a factorization
machine over the ranking features, trained in torch, served in numpy.

Training examples come from the same candidate pools the API ranks: for each sampled user,
the pool as of the moment before one of their engagements, labelled 1 for the item they
engaged with and 0 for the others (or a sample of them). The cuts are the second-to-last
engagement and, with ``cases_per_user`` > 1, the ones before it, so the evaluation's
held-out events (the last ones) are never trained on. Each pool is built with the context
its engagement was sent with and at its time, so the context features
(``serving.context_features``) are those of the moment, never of later events.

Two losses: ``pointwise`` (class-weighted log loss on each candidate, standardised
features) and ``pairwise`` (BPR: the engaged item must outscore each other candidate of
its pool). The pairwise model starts from the fixed blend's weights and is pulled back
towards them, so a feature the training pools never exercise (a search's query
similarity, say) keeps the blend's weight instead of being dropped."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.db import transaction

from recommender.conf import conf
from recommender.learning import evaluation
from recommender.models import EndUser, Scenario
from recommender.serving import (
    behaviour_models,
    candidates,
    cooccurrence,
    exposure,
    pipeline,
    profiles,
)
from recommender.serving.learned import BoostedScorer, LearnedScorer, save, save_decision
from recommender.serving.ranking import (
    CONTEXT_FEATURES,
    DEFAULT_WEIGHTS,
    FEATURES,
    BlendScorer,
    Scorer,
)

KINDS = ("logistic", "fm", "lambdarank")


LOSSES = ("pointwise", "pairwise")


# How strongly the pairwise model is held near the blend (per squared weight of drift).
PAIRWISE_PRIOR = 0.01


@dataclass
class TrainingReport:
    kind: str
    loss: str
    users: int
    examples: int
    positives: int
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    path: Path | None = None
    seconds: float = 0.0
    features: list[str] = field(default_factory=list)  # those the saved ranker reads
    # Final validation losses with and without the context features (the lower one won).
    context_val_loss: float | None = None
    plain_val_loss: float | None = None
    context_kept: bool = False
    # NDCG@10 on the validation pools, overall and on the cold slice, for the trained model
    # ("model") and the fixed blend ("blend"); and whether the model was activated.
    validation: dict = field(default_factory=dict)
    activated: bool = False
    validation_cases: int = 0


def training_cases(*, max_users: int | None, seed: int = 0, cases_per_user: int = 1) -> list:
    """The sampled users' engagements before their last one, newest first: the
    second-to-last for every user, then as many earlier ones as ``cases_per_user`` asks."""
    cases = evaluation.leave_one_out(max_users=max_users, seed=seed, offset=1)
    users = {case.user_id for case in cases}
    for offset in range(2, cases_per_user + 1):
        earlier = evaluation.leave_one_out(max_users=None, offset=offset)
        cases += [case for case in earlier if case.user_id in users]
    return cases


def build_examples(
    *,
    max_users: int | None = 300,
    seed: int = 0,
    negatives: int | None = 20,
    cases_per_user: int = 1,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels, case index and user id of candidates in pools before engagements.

    ``negatives`` caps the unengaged candidates kept per pool (None keeps them all).
    Every case's own target and every user's last engagement (what the evaluation holds
    out) are left out of the co-occurrence the pools are built from.
    """
    cases = training_cases(max_users=max_users, seed=seed, cases_per_user=cases_per_user)
    later = evaluation.leave_one_out(max_users=None, offset=0)
    held = [pk for case in cases + later for pk in case.held_out_events]
    [examples] = _pool_examples([(cases, negatives)], held, seed=seed, progress=progress)
    return examples


@dataclass
class Split:
    """Training pools (engagements before each user's second-to-last) and validation pools
    (the second-to-last, every candidate kept); the last engagements are never touched."""

    train: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    validation_cases: list
    # Distinct training users of each validation target (the cold slice: fewer than 3).
    target_users: dict[int, int]


def build_split(
    *,
    max_users: int | None = 300,
    seed: int = 0,
    negatives: int | None = 20,
    cases_per_user: int = 1,
    progress: Callable[[int], None] | None = None,
) -> Split:
    """The validation protocol: each sampled user's second-to-last engagement validates,
    the ``cases_per_user`` before it train; co-occurrence leaves out all of them and every
    user's last engagement (the evaluation's test targets)."""
    validation = evaluation.leave_one_out(max_users=max_users, seed=seed, offset=1)
    users = {case.user_id for case in validation}
    train_cases = []
    for offset in range(2, cases_per_user + 2):
        earlier = evaluation.leave_one_out(max_users=None, offset=offset)
        train_cases += [case for case in earlier if case.user_id in users]
    later = evaluation.leave_one_out(max_users=None, offset=0)
    held = [pk for case in train_cases + validation + later for pk in case.held_out_events]
    train, val = _pool_examples(
        [(train_cases, negatives), (validation, None)], held, seed=seed, progress=progress
    )
    unknown = [pk for case in validation + later for pk in case.held_out_events]
    counts = evaluation._training_counts(unknown)
    targets = {target for case in validation for target in case.targets}
    return Split(train, val, validation, {t: counts.get(t, 0) for t in targets})


def _pool_examples(batches, held, *, seed, progress):
    """For each (cases, negatives) batch: features, labels, case index, user id of the
    candidates of the pools before the cases' engagements, in one co-occurrence state
    that leaves out the ``held`` events."""
    rng = random.Random(seed)
    out = []
    every = [case for cases, _ in batches for case in cases]
    as_of = max((case.as_of for case in every), default=None)
    # The site's behaviour models, retrained without the held events, score the pools.
    models = evaluation.replay_models(held, before=as_of, seed=seed)
    with (
        transaction.atomic(),
        profiles.memoize_past_profiles(),
        behaviour_models.replaying(models),
    ):
        cooccurrence.refresh_cooccurrence(as_of=as_of, exclude_events=held)
        users = EndUser.objects.in_bulk([case.user_id for case in every])
        for cases, negatives in batches:
            rows, labels, groups, user_ids = [], [], [], []
            for index, case in enumerate(cases):
                # The pool as the request that led to the engagement would have seen it:
                # at the event's time (its hour of day) and with the context it was sent
                # with (its device). The segment and device category shares are computed as
                # of that time too (context_features counts only events before ``as_of``),
                # so no later event reaches a pool. The segment is the user's attribute as
                # stored now: attributes keep no history.
                pool = candidates.candidate_pool(
                    pipeline.RecommendationRequest(
                        user=users[case.user_id],
                        k=50,
                        as_of=case.as_of,
                        context=case.context,
                        explain=False,
                    )
                ).candidates
                positives = [c for c in pool if c.item_id in case.targets]
                if positives:
                    others = [c for c in pool if c.item_id not in case.targets]
                    if negatives is not None:
                        # Shown and ignored before the cut (impressions, no engagement): the
                        # surest negatives there are, always kept; the rest sampled.
                        ignored = exposure.ignored_items(case.user_id, 1, as_of=case.as_of)
                        shown = [c for c in others if c.item_id in ignored]
                        rest = [c for c in others if c.item_id not in ignored]
                        others = shown + rng.sample(
                            rest, min(max(negatives - len(shown), 0), len(rest))
                        )
                    labelled = [(c, 1.0) for c in positives] + [(c, 0.0) for c in others]
                    for candidate, label in labelled:
                        rows.append(candidate.feature_vector())
                        labels.append(label)
                        groups.append(index)
                        user_ids.append(case.user_id)
                if progress:
                    progress(1)
            out.append(_arrays(rows, labels, groups, user_ids))
        transaction.set_rollback(True)  # the co-occurrence table was only for training
    return out


def _arrays(rows, labels, groups, user_ids):
    if not rows:
        empty = np.zeros(0, int)
        return np.zeros((0, len(FEATURES)), np.float32), np.zeros(0, np.float32), empty, empty
    return (
        np.stack(rows),
        np.asarray(labels, np.float32),
        np.asarray(groups),
        np.asarray(user_ids),
    )


def ranking_pairs(labels: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (positive, negative) of every engaged/unengaged pair within a pool."""
    positives, negatives = [], []
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.diff(groups[order])) + 1
    for rows in np.split(order, bounds):
        pos = rows[labels[rows] == 1]
        neg = rows[labels[rows] == 0]
        if len(pos) and len(neg):
            positives.append(np.repeat(pos, len(neg)))
            negatives.append(np.tile(neg, len(pos)))
    if not positives:
        return np.zeros(0, int), np.zeros(0, int)
    return np.concatenate(positives), np.concatenate(negatives)


def train(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    kind: str = "logistic",
    loss: str = "pointwise",
    users: np.ndarray | None = None,
    epochs: int = 300,
    factors: int = 4,
    seed: int = 0,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> tuple[LearnedScorer, list[float], list[float]]:
    """Fit by full-batch Adam, holding out 20% of ``users`` (default: of ``groups``, the
    pools) for validation.

    ``pointwise``: class-weighted log loss on standardised features, from zero.
    ``pairwise``: BPR over each pool's (engaged, other) pairs on the raw features, starting
    from the blend's weights and regularised towards them.
    """
    import torch

    if kind not in ("logistic", "fm"):
        raise ValueError(f"ranker kind must be logistic or fm, not {kind!r}")
    if loss not in LOSSES:
        raise ValueError(f"ranker loss must be one of {', '.join(LOSSES)}, not {loss!r}")
    torch.manual_seed(seed)
    owners = groups if users is None else users
    rng = np.random.default_rng(seed)
    distinct = np.unique(owners)
    val_owners = rng.choice(distinct, size=max(1, len(distinct) // 5), replace=False)
    is_val = np.isin(owners, val_owners)
    n = features.shape[1]
    if loss == "pairwise":
        # Raw features (all scaled to about 0..1 by the ranking module), so the blend's
        # weights mean the same here and a feature constant in training keeps its weight.
        mean, std = np.zeros(n, np.float32), np.ones(n, np.float32)
    else:
        mean = features[~is_val].mean(axis=0)
        std = features[~is_val].std(axis=0) + 1e-6
    x = torch.tensor((features - mean) / std, dtype=torch.float32)
    linear = torch.nn.Linear(n, 1)
    params = list(linear.parameters())
    v = None
    # A feature constant in training (freshness on an imported catalogue, say) would turn its
    # interactions into hidden linear terms that change meaning once it varies at serving.
    varies = torch.tensor(features[~is_val].std(axis=0) > 1e-6, dtype=torch.float32)
    if kind == "fm":
        v = torch.nn.Parameter(0.01 * torch.randn(n, factors))
        params.append(v)

    def interactions():
        return v * varies.unsqueeze(1)

    def forward(inputs):
        out = linear(inputs).squeeze(-1)
        if v is not None:
            factors_used = interactions()
            projected = inputs @ factors_used
            out = out + 0.5 * (projected.pow(2) - inputs.pow(2) @ factors_used.pow(2)).sum(dim=1)
        return out

    if loss == "pairwise":
        prior = torch.tensor([DEFAULT_WEIGHTS.get(name, 0.0) for name in FEATURES[:n]])
        with torch.no_grad():
            linear.weight.copy_(prior.unsqueeze(0))
            linear.bias.zero_()
        # Ranking ignores the scale of the scores; a free temperature lets the loss sharpen
        # them without pulling the weights away from the prior.
        log_scale = torch.nn.Parameter(torch.tensor(math.log(10.0)))
        params.append(log_scale)
        pos, neg = ranking_pairs(labels, groups)
        pair_val = torch.tensor(is_val[pos])
        pos, neg = torch.tensor(pos), torch.tensor(neg)

        def objective(mask):
            scores = forward(x) * log_scale.exp()
            margins = scores[pos[mask]] - scores[neg[mask]]
            return torch.nn.functional.softplus(-margins).mean()

        def penalty():
            drift = (linear.weight[0] - prior).pow(2).sum()
            return PAIRWISE_PRIOR * (drift + (v.pow(2).sum() if v is not None else 0.0))

        def train_loss():
            return objective(~pair_val) + penalty()

        def val_loss():
            return objective(pair_val).item() if pair_val.any() else 0.0

        learning_rate = 0.01
    else:
        y = torch.tensor(labels, dtype=torch.float32)
        train_mask, val_mask = torch.tensor(~is_val), torch.tensor(is_val)
        # Positives are rare (1 in ~20): weight them so the model does not settle on "no".
        train_labels = labels[~is_val]
        pos_weight = torch.tensor(
            float((train_labels == 0).sum()) / max(float((train_labels == 1).sum()), 1.0)
        )
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)

        def train_loss():
            return loss_fn(forward(x[train_mask]), y[train_mask])

        def val_loss():
            return loss_fn(forward(x[val_mask]), y[val_mask]).item() if val_mask.any() else 0.0

        learning_rate = 0.05
    optimiser = torch.optim.Adam(
        params, lr=learning_rate, weight_decay=1e-4 if loss == "pointwise" else 0.0
    )

    train_losses, val_losses = [], []
    for epoch in range(epochs):
        optimiser.zero_grad()
        value = train_loss()
        value.backward()
        optimiser.step()
        with torch.no_grad():
            val = val_loss()
        train_losses.append(float(value.item()))
        val_losses.append(float(val))
        if on_epoch:
            on_epoch(epoch, train_losses[-1], val_losses[-1])
    scorer = LearnedScorer(
        kind=kind,
        features=list(FEATURES[:n]),
        mean=np.asarray(mean, np.float32),
        std=np.asarray(std, np.float32),
        weights=linear.weight.detach().numpy()[0].astype(np.float32),
        bias=float(linear.bias.detach().numpy()[0]),
        factors=None if v is None else interactions().detach().numpy().astype(np.float32),
        loss=loss,
    )
    return scorer, train_losses, val_losses


def reference_blend() -> BlendScorer:
    """The blend a learned ranker must beat and starts from: the default scenario's
    weights when it has some (what ``manage.py tune`` stores), else the code's defaults."""
    scenario = Scenario.objects.filter(is_default=True).first()
    weights = dict(scenario.blend_weights) if scenario and scenario.blend_weights else None
    return BlendScorer(weights)


def _group_sizes(groups: np.ndarray) -> np.ndarray:
    """Rows per pool, in order (the pools' rows are contiguous)."""
    bounds = np.flatnonzero(np.diff(groups)) + 1
    return np.diff(np.concatenate([[0], bounds, [len(groups)]]))


# The blend's scores times this are where the trees start from (LightGBM's init_score):
# lambdarank's gradients depend on score gaps, and the blend's gaps are a few tenths.
BLEND_TEMPERATURE = 5.0


def train_lambdarank(
    train_set: tuple,
    validation_set: tuple,
    *,
    rounds: int = 500,
    seed: int = 0,
    on_round: Callable[[int, float], None] | None = None,
) -> tuple[BoostedScorer, list[float]]:
    """Gradient-boosted trees with LightGBM's ``lambdarank`` objective over every feature,
    starting from the fixed blend's scores (so zero rounds is the blend) and early-stopped
    on NDCG@10 of the ``validation_set`` pools. Returns the scorer and that NDCG@10 after
    each round."""
    import lightgbm

    x, y, groups, _ = train_set
    vx, vy, vgroups, _ = validation_set
    if not len(vy) or not vy.sum():
        raise ValueError("no held-out pool holds its engaged item: nothing to stop on")
    names = list(FEATURES[: x.shape[1]])
    blend = reference_blend()
    base = blend.weights[: x.shape[1]] * BLEND_TEMPERATURE
    params = {
        "objective": "lambdarank",
        "metric": "None",  # LightGBM's own NDCG ranks ties optimistically; see pool_ndcg
        "learning_rate": 0.05,
        "num_leaves": 15,
        # Small sites have few pools: let leaves be small, but not single examples.
        "min_data_in_leaf": int(max(5, min(50, len(y) // 200))),
        "feature_fraction": 0.9,
        "lambda_l2": 1.0,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 2,
        "verbose": -1,
    }
    train_data = lightgbm.Dataset(
        x, y, group=_group_sizes(groups), feature_name=names, init_score=x @ base
    )
    val_data = lightgbm.Dataset(
        vx,
        vy,
        group=_group_sizes(vgroups),
        feature_name=names,
        reference=train_data,
        init_score=vx @ base,
    )
    curve: list[float] = []

    def ndcg(predictions, _data):
        # The validation predictions include the blend they started from.
        value = pool_ndcg(predictions, vy, vgroups).mean()
        curve.append(float(value))
        if on_round:
            on_round(len(curve) - 1, float(value))
        return "ndcg@10", float(value), True

    booster = lightgbm.train(
        params,
        train_data,
        num_boost_round=rounds,
        valid_sets=[val_data],
        feval=ndcg,
        callbacks=[lightgbm.early_stopping(30, verbose=False)],
    )
    scorer = BoostedScorer(
        features=names,
        model=booster.model_to_string(num_iteration=booster.best_iteration),
        base=base.tolist(),
        rounds=int(booster.best_iteration),
    )
    return scorer, curve


def pool_ndcg(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int = 10):
    """NDCG@``k`` of each pool (in group order) ranked by ``scores``, with a single
    relevant item; ties share the positions they span (a blend of zeros ranks nothing
    first, where LightGBM's metric would put the engaged item on top)."""
    out = []
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.diff(groups[order])) + 1
    for rows in np.split(order, bounds):
        if not len(rows):
            continue
        pool_scores = scores[rows]
        best = 0.0
        for row in rows[labels[rows] == 1]:
            ties = (pool_scores == scores[row]).sum() - 1
            rank = (pool_scores > scores[row]).sum() + 0.5 * ties
            if rank < k:
                best = max(best, 1.0 / math.log2(rank + 2))
        out.append(best)
    return np.asarray(out)


def validation_ndcg(scorer: Scorer, split: Split, k: int = 10) -> dict[str, float]:
    """NDCG@``k`` of each validation case when its pool is ranked by ``scorer`` (0 where the
    pool missed the engaged item), averaged overall and over the cold slice (the engaged
    item had fewer than 3 training users)."""
    features, labels, groups, _ = split.validation
    gains = np.zeros(len(split.validation_cases))
    if len(labels):
        gains[np.unique(groups)] = pool_ndcg(scorer.score(features), labels, groups, k)
    users = split.target_users
    cold = np.array(
        [min(users.get(t, 0) for t in case.targets) < 3 for case in split.validation_cases],
        dtype=bool,
    )
    return {
        "ndcg": float(gains.mean()) if len(gains) else 0.0,
        "cold_ndcg": float(gains[cold].mean()) if cold.any() else 0.0,
        "cold_cases": int(cold.sum()),
    }


def beats_blend(validation: dict) -> bool:
    """The activation rule: better than the blend overall, and no worse on the cold slice."""
    model, blend = validation["model"], validation["blend"]
    return model["ndcg"] > blend["ndcg"] and (
        model["cold_ndcg"] >= blend["cold_ndcg"] or not model["cold_cases"]
    )


def activate(scorer, split: Split, *, force: bool = False) -> tuple[dict, bool, Path]:
    """Compare ``scorer`` with the blend on the validation pools and save it when it wins
    (or ``force``); otherwise save the decision that the blend serves."""
    validation = {
        "model": validation_ndcg(scorer, split),
        "blend": validation_ndcg(reference_blend(), split),
    }
    scorer.validation = validation
    if force or beats_blend(validation):
        return validation, True, save(scorer)
    return validation, False, save_decision(validation, rejected=scorer.name)


def train_and_save(
    *,
    kind: str | None = None,
    loss: str | None = None,
    max_users: int | None = 300,
    cases_per_user: int = 1,
    negatives: int | None = 20,
    epochs: int = 300,
    seed: int = 0,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> TrainingReport:
    """Build the training and validation pools, train, and activate the model only when it
    beats the fixed blend on the validation pools, overall and on the cold slice
    (``force`` activates it anyway). Serving picks up the new file; when the blend wins,
    a decision file says so and serving uses the blend."""
    kind = kind or conf.RANKER
    loss = loss or conf.RANKER_LOSS
    if kind not in KINDS:
        raise ValueError(f"ranker kind must be one of {', '.join(KINDS)}, not {kind!r}")
    started = time.perf_counter()
    split = build_split(
        max_users=max_users,
        seed=seed,
        negatives=negatives,
        cases_per_user=cases_per_user,
        progress=progress,
    )
    features, labels, groups, users = split.train
    if kind == "lambdarank":
        loss = "lambdarank"
    report = TrainingReport(kind, loss, len(np.unique(users)), len(labels), int(labels.sum()))
    report.validation_cases = len(split.validation_cases)
    if report.positives == 0 or report.users < 2:
        raise ValueError(
            "not enough training data: need users with at least 4 engagements whose "
            "earlier engagements were among the candidates"
        )
    if kind == "lambdarank":
        # Early stopping watches a fifth of the training users' pools; the validation
        # pools stay untouched for the comparison with the blend below.
        rng = np.random.default_rng(seed)
        distinct = np.unique(users)
        watched = np.isin(users, rng.choice(distinct, max(1, len(distinct) // 5), replace=False))
        scorer, curve = train_lambdarank(
            tuple(part[~watched] for part in split.train),
            tuple(part[watched] for part in split.train),
            rounds=epochs,
            seed=seed,
            on_round=(lambda i, v: on_epoch(i, None, v)) if on_epoch else None,
        )
        report.val_loss = curve
    else:
        scorer = _train_linear(report, split, kind=kind, loss=loss, epochs=epochs, seed=seed,
                               on_epoch=on_epoch)  # fmt: skip
    report.features = list(scorer.features)
    report.validation, report.activated, report.path = activate(scorer, split, force=force)
    report.seconds = time.perf_counter() - started
    return report


def _train_linear(report, split, *, kind, loss, epochs, seed, on_epoch) -> LearnedScorer:
    """The logistic or factorization-machine ranker, trained with and without the context
    features on the same held-out users; the lower validation loss wins: a small site's
    few shoppers let the factorization machine overfit the per-request constants (hour,
    device)."""
    features, labels, groups, users = split.train
    scorer, report.train_loss, report.val_loss = train(
        features,
        labels,
        groups,
        kind=kind,
        loss=loss,
        users=users,
        epochs=epochs,
        seed=seed,
        on_epoch=on_epoch,
    )
    # Without them: their columns are zero in training and their weights zero after it.
    context = np.array([name in CONTEXT_FEATURES for name in FEATURES[: features.shape[1]]])
    plain, plain_train, plain_val = train(
        np.where(context, 0.0, features).astype(np.float32),
        labels,
        groups,
        kind=kind,
        loss=loss,
        users=users,
        epochs=epochs,
        seed=seed,
    )
    plain.weights[context] = 0.0
    if plain.factors is not None:
        plain.factors[context] = 0.0
    report.context_val_loss = report.val_loss[-1]
    report.plain_val_loss = plain_val[-1]
    report.context_kept = plain_val[-1] > report.val_loss[-1]
    if not report.context_kept:
        scorer, report.train_loss, report.val_loss = plain, plain_train, plain_val
    return scorer
