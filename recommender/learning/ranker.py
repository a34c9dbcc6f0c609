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
from recommender.models import EndUser
from recommender.serving import candidates, cooccurrence, exposure, pipeline, profiles
from recommender.serving.learned import LearnedScorer, save
from recommender.serving.ranking import CONTEXT_FEATURES, DEFAULT_WEIGHTS, FEATURES

KINDS = ("logistic", "fm")


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
    rng = random.Random(seed)
    cases = training_cases(max_users=max_users, seed=seed, cases_per_user=cases_per_user)
    later = evaluation.leave_one_out(max_users=None, offset=0)
    held = [pk for case in cases for pk in case.held_out_events]
    held += [pk for case in later for pk in case.held_out_events]
    rows, labels, groups, user_ids = [], [], [], []
    with transaction.atomic(), profiles.memoize_past_profiles():
        as_of = max((case.as_of for case in cases), default=None)
        cooccurrence.refresh_cooccurrence(as_of=as_of, exclude_events=held)
        users = EndUser.objects.in_bulk([case.user_id for case in cases])
        for index, case in enumerate(cases):
            # The pool as the request that led to the engagement would have seen it: at the
            # event's time (its hour of day) and with the context it was sent with (its
            # device). The segment and device category shares are computed as of that time
            # too (context_features counts only events before ``as_of``), so no later event
            # reaches a training pool. The segment is the user's attribute as stored now:
            # attributes keep no history.
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
                for candidate, label in [(c, 1.0) for c in positives] + [(c, 0.0) for c in others]:
                    rows.append(candidate.feature_vector())
                    labels.append(label)
                    groups.append(index)
                    user_ids.append(case.user_id)
            if progress:
                progress(1)
        transaction.set_rollback(True)  # the co-occurrence table was only for training
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

    if kind not in KINDS:
        raise ValueError(f"ranker kind must be one of {', '.join(KINDS)}, not {kind!r}")
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


def train_and_save(
    *,
    kind: str | None = None,
    loss: str | None = None,
    max_users: int | None = 300,
    cases_per_user: int = 1,
    negatives: int | None = 20,
    epochs: int = 300,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> TrainingReport:
    """Build examples, train, save; the serving path picks the new file up."""
    kind = kind or conf.RANKER
    loss = loss or conf.RANKER_LOSS
    started = time.perf_counter()
    features, labels, groups, users = build_examples(
        max_users=max_users,
        seed=seed,
        negatives=negatives,
        cases_per_user=cases_per_user,
        progress=progress,
    )
    report = TrainingReport(kind, loss, len(np.unique(users)), len(labels), int(labels.sum()))
    if report.positives == 0 or report.users < 2:
        raise ValueError(
            "not enough training data: need users with at least 3 engagements whose next "
            "engagement was among the candidates"
        )
    # With and without the context features, on the same held-out users: a small site's
    # few shoppers let the factorization machine overfit the per-request constants (hour,
    # device), so the context features are kept only where they lower the validation loss.
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
    base = FEATURES.index(CONTEXT_FEATURES[0])
    plain, plain_train, plain_val = train(
        features[:, :base],
        labels,
        groups,
        kind=kind,
        loss=loss,
        users=users,
        epochs=epochs,
        seed=seed,
    )
    report.context_val_loss = report.val_loss[-1]
    report.plain_val_loss = plain_val[-1]
    if plain_val[-1] <= report.val_loss[-1]:
        scorer, report.train_loss, report.val_loss = plain, plain_train, plain_val
    report.features = list(scorer.features)
    report.path = save(scorer)
    report.seconds = time.perf_counter() - started
    return report
