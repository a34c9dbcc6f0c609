"""Training the behaviour models that serving scores in numpy
(``recommender.serving.behaviour_models``): EASE, implicit-feedback ALS and SASRec.

The training functions are pure: they take interactions ``(user, item, weight, time)`` or
item sequences and return a :class:`TrainedModel`, so an evaluation can train them on a
leakage-free split without touching the database. :func:`read_interactions` is the thin
reader over the behaviour log (positive events only, ``behaviour.is_positive``, weighted by
``behaviour.weight``), and :func:`train_and_save_all` is what the command and the nightly
task run.

References:
    - Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019 (EASE).
    - Hu, Koren & Volinsky, "Collaborative Filtering for Implicit Feedback Datasets",
      ICDM 2008 (ALS, through the ``implicit`` library).
    - Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018 (SASRec).
"""

from __future__ import annotations

import math
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from recommender import behaviour
from recommender.conf import conf
from recommender.serving import behaviour_models as serving
from recommender.serving.behaviour_models import NAMES, SASREC_BLOCK_PARAMS, BehaviourModel

# One positive event: (user id, item id, weight, time). Time is anything that orders
# (a datetime, a Unix timestamp); events of a user with equal times keep their order.
Interaction = tuple[int, int, float, Any]

# progress(model name, steps done, steps in all)
Progress = Callable[[str, int, int], None]

# Leave-last-out validation scores at this cut-off.
VALIDATION_K = 10


@dataclass
class TrainingReport:
    """What one training run did: data sizes, validation figures, time and file."""

    name: str
    users: int = 0
    items: int = 0
    interactions: int = 0
    items_dropped: int = 0  # left out above the item cap (EASE)
    seconds: float = 0.0
    size_bytes: int = 0
    # Leave-last-out: NDCG/recall at VALIDATION_K, full ranking, seen items excluded.
    validation: dict[str, float] = field(default_factory=dict)
    epochs: list[dict[str, float]] = field(default_factory=list)  # SASRec, per epoch
    notes: list[str] = field(default_factory=list)
    path: Path | None = None


@dataclass
class TrainedModel:
    """A trained model as its arrays and metadata, ready to save or to serve in memory."""

    name: str
    arrays: dict[str, np.ndarray]
    meta: dict
    report: TrainingReport

    def serving(self) -> BehaviourModel:
        """The serving model (numpy) for these arrays, without saving them."""
        return serving.from_arrays(self.name, self.arrays, self.meta)

    @property
    def size_bytes(self) -> int:
        return int(sum(array.nbytes for array in self.arrays.values()))


def save_model(model: TrainedModel, name: str | None = None) -> Path:
    """Save ``model`` as the newest version of ``name`` (default: its own name); serving
    picks it up on its next load."""
    name = name or model.name
    path = serving.save(name, model.arrays, {**model.meta, "name": model.name})
    model.report.path = path
    return path


# --- Data --------------------------------------------------------------------------------------


def read_interactions(
    *, exclude_events: Iterable[int] = (), before: datetime | None = None
) -> list[Interaction]:
    """Positive events from the behaviour log, oldest first per user, as interactions.

    ``exclude_events``: Behaviour primary keys to leave out (an evaluation's held-out
    events, ``Case.held_out_events``); ``before``: only events that occurred earlier.
    Events older than ``RECOMMENDER_BEHAVIOUR_RETENTION_DAYS`` no longer count.
    """
    from recommender.models import Behaviour

    rows = Behaviour.objects.filter(behaviour.positive_q())
    since = behaviour.retention_start(before)
    if since is not None:
        rows = rows.filter(occurred_at__gte=since)
    if before is not None:
        rows = rows.filter(occurred_at__lt=before)
    excluded = list(exclude_events)
    if excluded:
        rows = rows.exclude(pk__in=excluded)
    weights = {kind: behaviour.weight(kind) for kind in behaviour.ENGAGED}
    out = []
    for user_id, item_id, kind, occurred_at in (
        rows.order_by("user_id", "occurred_at", "pk")
        .values_list("user_id", "item_id", "kind", "occurred_at")
        .iterator(chunk_size=20000)
    ):
        weight = weights.get(kind, 0.0)
        if weight > 0:
            out.append((user_id, item_id, weight, occurred_at))
    return out


def histories(interactions: Iterable[Interaction]) -> dict[int, list[int]]:
    """Each user's item ids in time order (equal times keep the input order)."""
    events: dict[int, list[tuple[Any, int, int]]] = defaultdict(list)
    for index, (user, item, _weight, moment) in enumerate(interactions):
        events[user].append((moment, index, item))
    return {user: [item for _, _, item in sorted(rows)] for user, rows in events.items()}


def sequences(interactions: Iterable[Interaction]) -> list[list[int]]:
    """The users' histories as item sequences (SASRec's input)."""
    return list(histories(interactions).values())


def leave_last_out(
    interactions: Sequence[Interaction],
) -> tuple[list[Interaction], dict[int, int]]:
    """Hold out each user's last event: (the other interactions, user → held-out item).

    Users with one event keep it for training and get no target; a target the user had
    already engaged with earlier is dropped (a full ranking that excludes seen items could
    never hit it).
    """
    last: dict[int, tuple[Any, int]] = {}
    for index, (user, _item, _weight, moment) in enumerate(interactions):
        if user not in last or (moment, index) >= last[user]:
            last[user] = (moment, index)
    counts: dict[int, int] = defaultdict(int)
    for user, *_ in interactions:
        counts[user] += 1
    held_index = {index: user for user, (_, index) in last.items() if counts[user] >= 2}
    train = [row for index, row in enumerate(interactions) if index not in held_index]
    seen: dict[int, set[int]] = defaultdict(set)
    for user, item, *_ in train:
        seen[user].add(item)
    targets = {}
    for index, user in held_index.items():
        item = interactions[index][1]
        if item not in seen[user]:
            targets[user] = item
    return train, targets


def validation_metrics(
    model: BehaviourModel,
    user_histories: Mapping[int, Sequence[int]],
    targets: Mapping[int, int],
    *,
    k: int = VALIDATION_K,
    max_users: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """NDCG@k and recall@k of ``model`` for one held-out item per user: full ranking over
    the model's items, the user's history excluded."""
    users = sorted(user for user in targets if user_histories.get(user))
    if max_users is not None and len(users) > max_users:
        users = sorted(random.Random(seed).sample(users, max_users))
    ndcg = hits = 0.0
    for user in users:
        history = list(user_histories[user])
        ranked = [item for item, _ in model.top(history, k, exclude=set(history))]
        if targets[user] in ranked:
            hits += 1
            ndcg += 1.0 / math.log2(ranked.index(targets[user]) + 2)
    n = max(len(users), 1)
    return {f"ndcg@{k}": ndcg / n, f"recall@{k}": hits / n, "users": float(len(users))}


def _matrix(
    interactions: Iterable[Interaction], item_ids: np.ndarray | None = None
) -> tuple[Any, np.ndarray, np.ndarray]:
    """The user × item matrix of summed weights (CSR), its user ids and its item ids
    (``item_ids`` given: only those items, in that order)."""
    import scipy.sparse as sp

    rows = list(interactions)
    users = np.asarray(sorted({row[0] for row in rows}), dtype=np.int64)
    if item_ids is None:
        item_ids = np.asarray(sorted({row[1] for row in rows}), dtype=np.int64)
    user_index = {int(user): index for index, user in enumerate(users.tolist())}
    item_index = {int(item): index for index, item in enumerate(item_ids.tolist())}
    kept = [row for row in rows if row[1] in item_index]
    matrix = sp.csr_matrix(
        (
            np.asarray([row[2] for row in kept], dtype=np.float64),
            (
                np.asarray([user_index[row[0]] for row in kept], dtype=np.int64),
                np.asarray([item_index[row[1]] for row in kept], dtype=np.int64),
            ),
        ),
        shape=(len(users), len(item_ids)),
    )
    matrix.sum_duplicates()
    return matrix, users, item_ids


def _threads(threads: int | None) -> int:
    threads = conf.BEHAVIOUR_MODEL_THREADS if threads is None else threads
    return int(threads) if threads and threads > 0 else (os.cpu_count() or 1)


def _require(interactions: Sequence[Interaction], name: str) -> None:
    if not interactions:
        raise ValueError(
            f"no positive behaviours to train {name} on: import behaviours first "
            "(manage.py import_behaviours)"
        )


# --- EASE ----------------------------------------------------------------------------------------


def ease_weights(gram: np.ndarray, lam: float) -> np.ndarray:
    """The dense EASE solution B = I − P·diag(1/diag(P)), P = (G + λI)⁻¹, from the Gram
    matrix G = XᵀX (overwritten). The diagonal of B is 0."""
    from scipy.linalg import lapack

    gram[np.diag_indices_from(gram)] += lam
    # G + λI is symmetric positive definite: invert it through its Cholesky factor, in
    # place (half the work and none of the extra n² copies of a general inverse).
    potrf, potri = lapack.get_lapack_funcs(("potrf", "potri"), (gram,))
    factor, info = potrf(gram, lower=True, overwrite_a=True, clean=False)
    if info != 0:
        raise ValueError(f"EASE: XᵀX + λI is not positive definite (LAPACK potrf info {info})")
    inverse, info = potri(factor, lower=True, overwrite_c=True)
    if info != 0:
        raise ValueError(f"EASE: inverting XᵀX + λI failed (LAPACK potri info {info})")
    # potri fills the lower triangle only: mirror it, a band of rows at a time (index
    # arrays over the whole triangle would cost more memory than the matrix).
    n, chunk = len(inverse), 1024
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        inverse[start:stop, stop:] = inverse[stop:, start:stop].T
        square = inverse[start:stop, start:stop]
        square[...] = np.tril(square) + np.tril(square, -1).T
    diagonal = np.diag(inverse).copy()
    inverse /= -diagonal  # column j divided by −P_jj
    inverse[np.diag_indices_from(inverse)] = 0.0
    return inverse


def _gram(matrix: Any, dtype: type, budget: int = 50_000_000) -> np.ndarray:
    """XᵀX as a dense array, a band of columns at a time: a sparse product would hold
    every co-occurring pair as a sparse entry (three times the memory of the dense one)."""
    n = matrix.shape[1]
    gram = np.empty((n, n), dtype=dtype)
    transposed = matrix.T.tocsr().astype(dtype)
    columns = matrix.tocsc().astype(dtype)
    chunk = max(1, min(n, budget // max(matrix.shape[0], 1)))
    for start in range(0, n, chunk):
        gram[:, start : start + chunk] = transposed @ columns[:, start : start + chunk].toarray()
    return gram


def prune_columns(weights: np.ndarray, top_n: int, chunk: int = 1024) -> Any:
    """Keep the ``top_n`` largest-magnitude weights of each column (target item) of the
    dense ``weights``; returns CSR (rows: the history item, columns: the target)."""
    import scipy.sparse as sp

    n = weights.shape[0]
    keep = min(top_n, n)
    rows, cols, values = [], [], []
    for start in range(0, weights.shape[1], chunk):
        block = weights[:, start : start + chunk]
        if keep < n:
            top = np.argpartition(-np.abs(block), keep - 1, axis=0)[:keep]
        else:
            top = np.broadcast_to(np.arange(n)[:, None], block.shape)
        picked = np.take_along_axis(block, top, axis=0)
        nonzero = picked != 0
        rows.append(top[nonzero])
        cols.append(np.broadcast_to(np.arange(start, start + block.shape[1]), top.shape)[nonzero])
        values.append(picked[nonzero].astype(np.float32))
    matrix = sp.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=weights.shape
    )
    matrix.sort_indices()
    return matrix


def train_ease(
    interactions: Sequence[Interaction],
    *,
    lam: float | None = None,
    max_items: int | None = None,
    top_n: int | None = None,
    progress: Progress | None = None,
) -> TrainedModel:
    """EASE on the binary user × item matrix of ``interactions``.

    Args:
        lam: the L2 weight λ (default ``RECOMMENDER_EASE_LAMBDA``).
        max_items: above this many items only the ones with the most distinct users are
            modelled (default ``RECOMMENDER_EASE_MAX_ITEMS``; memory and time grow as n²
            and n³); the report says how many were left out.
        top_n: weights kept per target item (default ``RECOMMENDER_EASE_TOP_N``).
    """
    _require(interactions, "EASE")
    lam = float(conf.EASE_LAMBDA if lam is None else lam)
    max_items = int(conf.EASE_MAX_ITEMS if max_items is None else max_items)
    top_n = int(conf.EASE_TOP_N if top_n is None else top_n)
    if lam <= 0 or max_items < 2 or top_n < 1:
        raise ValueError("EASE needs lambda > 0, max items >= 2 and top N >= 1")
    started = time.perf_counter()
    report = TrainingReport("ease")
    matrix, users, item_ids = _matrix(interactions)
    matrix.data[:] = 1.0  # EASE models who engaged, not how strongly
    if len(item_ids) > max_items:
        engaged = np.asarray(matrix.sum(axis=0)).ravel()
        chosen = np.sort(np.argsort(-engaged, kind="stable")[:max_items])
        report.items_dropped = len(item_ids) - max_items
        report.notes.append(
            f"{len(item_ids)} items is above the cap of {max_items} "
            f"(RECOMMENDER_EASE_MAX_ITEMS): trained on the {max_items} most engaged, "
            f"{report.items_dropped} left out"
        )
        matrix, item_ids = matrix[:, chosen], item_ids[chosen]
    if len(item_ids) < 2:
        raise ValueError("EASE needs at least two items with positive behaviours")
    if progress:
        progress("ease", 1, 3)
    # float64 while the n × n matrices are small, float32 above (memory: 4n² bytes each).
    dtype = np.float64 if len(item_ids) <= 8000 else np.float32
    gram = _gram(matrix, dtype)
    weights = ease_weights(gram, lam)
    if progress:
        progress("ease", 2, 3)
    pruned = prune_columns(weights, top_n)
    del weights, gram
    if progress:
        progress("ease", 3, 3)
    report.users, report.items, report.interactions = len(users), len(item_ids), len(interactions)
    model = TrainedModel(
        "ease",
        {
            "item_ids": item_ids,
            "indptr": pruned.indptr.astype(np.int64),
            "indices": pruned.indices.astype(np.int32),
            "data": pruned.data.astype(np.float32),
        },
        {"lambda": lam, "top_n": top_n, "max_items": max_items},
        report,
    )
    report.seconds = time.perf_counter() - started
    report.size_bytes = model.size_bytes
    return model


# --- ALS ---------------------------------------------------------------------------------------


def train_als(
    interactions: Sequence[Interaction],
    *,
    factors: int | None = None,
    regularization: float | None = None,
    alpha: float | None = None,
    iterations: int | None = None,
    threads: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> TrainedModel:
    """Implicit-feedback ALS (``implicit.cpu.als.AlternatingLeastSquares``) on the user ×
    item matrix of summed event weights; only the item factors are kept (serving folds
    users in from their history).

    Confidence is ``alpha × summed weight``; defaults come from ``RECOMMENDER_ALS_*``.
    ``threads``: the solver's threads (default ``RECOMMENDER_BEHAVIOUR_MODEL_THREADS``, 0
    for every core); BLAS is held to one thread meanwhile, as ``implicit`` asks.
    """
    import threadpoolctl
    from implicit.cpu.als import AlternatingLeastSquares

    _require(interactions, "ALS")
    factors = int(conf.ALS_FACTORS if factors is None else factors)
    regularization = float(conf.ALS_REGULARIZATION if regularization is None else regularization)
    alpha = float(conf.ALS_ALPHA if alpha is None else alpha)
    iterations = int(conf.ALS_ITERATIONS if iterations is None else iterations)
    if factors < 1 or iterations < 1 or regularization < 0 or alpha <= 0:
        raise ValueError("ALS needs factors >= 1, iterations >= 1, regularization >= 0, alpha > 0")
    started = time.perf_counter()
    matrix, users, item_ids = _matrix(interactions)
    # A served history carries item ids only: each occurrence counts the mean event weight.
    history_weight = float(sum(row[2] for row in interactions) / len(interactions))

    def on_iteration(iteration: int, _elapsed: float, _loss: float | None) -> None:
        if progress:
            progress("als", iteration + 1, iterations)

    # Multithreaded BLAS inside implicit's own threads makes ALS many times slower.
    with threadpoolctl.threadpool_limits(1, "blas"):
        als = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            num_threads=_threads(threads),
            random_state=seed,
        )
        als.fit(matrix.astype(np.float32), show_progress=False, callback=on_iteration)
    item_factors = np.asarray(als.item_factors, dtype=np.float32)
    report = TrainingReport(
        "als", users=len(users), items=len(item_ids), interactions=len(interactions)
    )
    model = TrainedModel(
        "als",
        {"item_ids": item_ids, "item_factors": item_factors},
        {
            "factors": factors,
            "regularization": regularization,
            "alpha": alpha,
            "iterations": iterations,
            "history_weight": history_weight,
        },
        report,
    )
    report.seconds = time.perf_counter() - started
    report.size_bytes = model.size_bytes
    return model


# --- SASRec --------------------------------------------------------------------------------------


def sasrec_network(n_items: int, dim: int, max_length: int, blocks: int, heads: int, dropout):
    """The torch SASRec network (built here so that importing this module loads no torch)."""
    import torch
    from torch import nn

    class Block(nn.Module):
        """Pre-norm block: attention whose queries are normalised (as in the paper's code),
        then a position-wise feed-forward layer, each with a residual connection."""

        def __init__(self) -> None:
            super().__init__()
            self.ln1 = nn.LayerNorm(dim, eps=serving.LAYER_NORM_EPS)
            self.q = nn.Linear(dim, dim)
            self.k = nn.Linear(dim, dim)
            self.v = nn.Linear(dim, dim)
            self.o = nn.Linear(dim, dim)
            self.ln2 = nn.LayerNorm(dim, eps=serving.LAYER_NORM_EPS)
            self.ff1 = nn.Linear(dim, dim)
            self.ff2 = nn.Linear(dim, dim)
            self.dropout = nn.Dropout(dropout)

        def forward(self, x, allowed):
            batch, length, _ = x.shape
            head_dim = dim // heads
            h = self.ln1(x)

            def split(t):
                return t.view(batch, length, heads, head_dim).transpose(1, 2)

            q, k, v = split(self.q(h)), split(self.k(x)), split(self.v(x))
            logits = (q @ k.transpose(-1, -2)) / math.sqrt(head_dim)
            logits = logits.masked_fill(~allowed, float("-inf"))
            attention = self.dropout(torch.softmax(logits, dim=-1))
            mixed = (attention @ v).transpose(1, 2).reshape(batch, length, dim)
            x = h + self.dropout(self.o(mixed))
            hidden = self.dropout(torch.relu(self.ff1(self.ln2(x))))
            return x + self.dropout(self.ff2(hidden))

    class SASRec(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.item_embeddings = nn.Embedding(n_items + 1, dim, padding_idx=0)
            self.position_embeddings = nn.Embedding(max_length, dim)
            self.blocks = nn.ModuleList(Block() for _ in range(blocks))
            self.final_ln = nn.LayerNorm(dim, eps=serving.LAYER_NORM_EPS)
            self.dropout = nn.Dropout(dropout)
            nn.init.normal_(self.item_embeddings.weight, std=dim**-0.5)
            nn.init.normal_(self.position_embeddings.weight, std=dim**-0.5)
            with torch.no_grad():
                self.item_embeddings.weight[0].zero_()

        def forward(self, seqs):
            """Hidden states of right-aligned, left-padded (0) item sequences."""
            length = seqs.shape[1]
            x = self.item_embeddings(seqs) * math.sqrt(dim)
            x = self.dropout(x + self.position_embeddings.weight[max_length - length :])
            causal = torch.ones(length, length, dtype=torch.bool, device=seqs.device).tril()
            allowed = causal & (seqs != 0)[:, None, :]
            # Every position may attend to itself, so padding rows are never all -inf; real
            # items never see padding, which makes their states independent of it.
            allowed = (allowed | torch.eye(length, dtype=torch.bool, device=seqs.device))[:, None]
            for block in self.blocks:
                x = block(x, allowed)
            return self.final_ln(x)

        def export(self) -> dict[str, np.ndarray]:
            """The weights under the names the numpy forward pass reads."""
            out = {
                "item_embeddings": self.item_embeddings.weight,
                "position_embeddings": self.position_embeddings.weight,
                "final_ln_w": self.final_ln.weight,
                "final_ln_b": self.final_ln.bias,
            }
            for index, block in enumerate(self.blocks):
                for name in SASREC_BLOCK_PARAMS:
                    layer, kind = name.rsplit("_", 1)
                    tensor = getattr(block, layer)
                    out[f"b{index}_{name}"] = tensor.weight if kind == "w" else tensor.bias
            return {
                key: value.detach().cpu().numpy().astype(np.float32) for key, value in out.items()
            }

    return SASRec()


def _windows(sequence: list[int], max_length: int) -> list[tuple[list[int], list[int]]]:
    """(inputs, next items) windows of at most ``max_length`` covering ``sequence``, the
    newest first."""
    out = []
    end = len(sequence) - 1
    while end >= 1:
        start = max(0, end - max_length)
        out.append((sequence[start:end], sequence[start + 1 : end + 1]))
        end = start
    return out


def _left_pad(rows: list[list[int]], length: int) -> np.ndarray:
    out = np.zeros((len(rows), length), dtype=np.int64)
    for index, row in enumerate(rows):
        row = row[-length:]
        if row:
            out[index, length - len(row) :] = row
    return out


def train_sasrec(
    sequences: Iterable[Sequence[int]],
    *,
    dim: int | None = None,
    blocks: int | None = None,
    heads: int = 1,
    max_length: int | None = None,
    epochs: int | None = None,
    patience: int = 5,
    min_epochs: int = 10,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    dropout: float = 0.2,
    threads: int | None = None,
    negatives: int | None = None,
    validation_users: int = 2000,
    seed: int = 0,
    progress: Progress | None = None,
) -> TrainedModel:
    """SASRec on item sequences (oldest first), trained with a softmax over the next item
    and ``negatives`` items sampled per batch (default ``RECOMMENDER_SASREC_NEGATIVES``;
    0, or as many as there are items: a full softmax over all items).

    Each sequence's last item is held out for validation: after every epoch the model
    ranks all items (seen ones excluded) for up to ``validation_users`` sequences, and
    training stops when NDCG@10 has not improved for ``patience`` epochs (never before
    ``min_epochs``: it often idles for the first few); the best epoch's weights are kept.
    Defaults come from ``RECOMMENDER_SASREC_*``; ``threads`` as for ALS.
    """
    import torch

    dim = int(conf.SASREC_DIM if dim is None else dim)
    blocks = int(conf.SASREC_BLOCKS if blocks is None else blocks)
    max_length = int(conf.SASREC_MAX_LENGTH if max_length is None else max_length)
    epochs = int(conf.SASREC_EPOCHS if epochs is None else epochs)
    negatives = int(conf.SASREC_NEGATIVES if negatives is None else negatives)
    if dim < 1 or dim % heads or blocks < 1 or max_length < 2 or epochs < 1:
        raise ValueError(
            "SASRec needs dim divisible by heads, blocks >= 1, length >= 2, epochs >= 1"
        )
    rows = [list(sequence) for sequence in sequences]
    rows = [row for row in rows if row]
    if not rows:
        raise ValueError(
            "no positive behaviours to train SASRec on: import behaviours first "
            "(manage.py import_behaviours)"
        )
    started = time.perf_counter()
    item_ids = np.asarray(sorted({item for row in rows for item in row}), dtype=np.int64)
    index = {int(item): position + 1 for position, item in enumerate(item_ids.tolist())}
    encoded = [[index[item] for item in row] for row in rows]
    train_rows = [row[:-1] for row in encoded if len(row) >= 2]
    windows = [window for row in train_rows for window in _windows(row, max_length)]
    if not windows:
        raise ValueError("SASRec needs users with at least three positive events")
    inputs = torch.from_numpy(_left_pad([w[0] for w in windows], max_length))
    targets = torch.from_numpy(_left_pad([w[1] for w in windows], max_length))
    sampled = 0 < negatives < len(item_ids)
    validation = [row for row in encoded if len(row) >= 2 and row[-1] not in row[:-1]]
    validation = random.Random(seed).sample(validation, min(validation_users, len(validation)))

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(_threads(threads))
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    network = sasrec_network(len(item_ids), dim, max_length, blocks, heads, dropout)
    optimiser = torch.optim.Adam(network.parameters(), lr=learning_rate)
    report = TrainingReport(
        "sasrec",
        users=len(rows),
        items=len(item_ids),
        interactions=sum(len(row) for row in rows),
    )
    best_score, best_state, best_epoch, stale = -1.0, None, 0, 0
    try:
        for epoch in range(epochs):
            network.train()
            order = torch.randperm(len(inputs), generator=generator)
            total, count = 0.0, 0
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                seqs, nexts = inputs[batch], targets[batch]
                mask = nexts != 0
                hidden = network(seqs)[mask]
                wanted = nexts[mask]
                embeddings = network.item_embeddings.weight
                if sampled:
                    # Sampled softmax: the next item against negatives drawn uniformly for
                    # the whole batch (a negative that is the next item itself is masked).
                    negative = torch.randint(
                        1, len(item_ids) + 1, (negatives,), generator=generator
                    )
                    # Rows gathered with embedding(), not embeddings[ids]: indexing's
                    # backward sums repeated rows' gradients in a different order on every
                    # run with two threads, so one seed gave different models.
                    gather = torch.nn.functional.embedding
                    positive_logit = (hidden * gather(wanted, embeddings)).sum(dim=1, keepdim=True)
                    negative_logits = hidden @ gather(negative, embeddings).T
                    negative_logits = negative_logits.masked_fill(
                        negative[None, :] == wanted[:, None], float("-inf")
                    )
                    logits = torch.cat([positive_logit, negative_logits], dim=1)
                    labels = torch.zeros(len(wanted), dtype=torch.long)
                else:
                    logits = hidden @ embeddings.T
                    logits[:, 0] = float("-inf")  # padding is never the next item
                    labels = wanted
                loss = torch.nn.functional.cross_entropy(logits, labels)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += loss.item() * len(wanted)
                count += len(wanted)
            metrics = _sasrec_validation(network, validation, max_length)
            report.epochs.append({"epoch": epoch + 1, "loss": total / max(count, 1), **metrics})
            if progress:
                progress("sasrec", epoch + 1, epochs)
            score = metrics[f"ndcg@{VALIDATION_K}"]
            if score > best_score:
                best_score, best_epoch, stale = score, epoch + 1, 0
                best_state = {key: value.clone() for key, value in network.state_dict().items()}
            else:
                stale += 1
                if stale >= patience and epoch + 1 >= min_epochs:
                    report.notes.append(f"stopped early after epoch {epoch + 1}")
                    break
        network.load_state_dict(best_state)
        network.eval()
        weights = network.export()
    finally:
        torch.set_num_threads(previous_threads)
    report.validation = {
        **{key: value for key, value in report.epochs[best_epoch - 1].items() if "@" in key},
        "users": float(len(validation)),
        "best_epoch": float(best_epoch),
    }
    model = TrainedModel(
        "sasrec",
        {"item_ids": item_ids, **weights},
        {
            "dim": dim,
            "blocks": blocks,
            "heads": heads,
            "max_length": max_length,
            "negatives": negatives if sampled else 0,
            "epochs_trained": len(report.epochs),
            "best_epoch": best_epoch,
        },
        report,
    )
    report.seconds = time.perf_counter() - started
    report.size_bytes = model.size_bytes
    return model


def _sasrec_validation(network, rows: list[list[int]], max_length: int) -> dict[str, float]:
    """NDCG and recall at VALIDATION_K of each row's last item from the ones before it."""
    import torch

    if not rows:
        return {f"ndcg@{VALIDATION_K}": 0.0, f"recall@{VALIDATION_K}": 0.0}
    network.eval()
    ndcg = hits = 0.0
    with torch.no_grad():
        for start in range(0, len(rows), 256):
            chunk = rows[start : start + 256]
            seqs = torch.from_numpy(_left_pad([row[:-1] for row in chunk], max_length))
            query = network(seqs)[:, -1]
            scores = query @ network.item_embeddings.weight.T
            scores[:, 0] = float("-inf")
            for offset, row in enumerate(chunk):
                scores[offset, row[:-1]] = float("-inf")  # seen items are excluded
            target = torch.tensor([row[-1] for row in chunk])
            rank = (scores > scores[torch.arange(len(chunk)), target][:, None]).sum(dim=1)
            hit = rank < VALIDATION_K
            hits += float(hit.sum())
            ndcg += float((1.0 / torch.log2(rank[hit].double() + 2)).sum())
    return {f"ndcg@{VALIDATION_K}": ndcg / len(rows), f"recall@{VALIDATION_K}": hits / len(rows)}


# --- All of them, from the database -------------------------------------------------------------


def _validate(
    train: Callable[..., TrainedModel],
    interactions: Sequence[Interaction],
    validation_users: int,
    options: dict,
) -> dict[str, float]:
    """Leave-last-out figures of ``train`` (fitted once more, without the held-out events)."""
    rest, targets = leave_last_out(interactions)
    if not targets:
        return {}
    model = train(rest, **options).serving()
    return validation_metrics(model, histories(rest), targets, max_users=validation_users)


def train_and_save_all(
    models: Sequence[str] = NAMES,
    *,
    progress: Progress | None = None,
    exclude_events: Iterable[int] = (),
    before: datetime | None = None,
    epochs: int | None = None,
    validate: bool = True,
    validation_users: int = 2000,
    seed: int = 0,
    interactions: Sequence[Interaction] | None = None,
) -> list[TrainedModel]:
    """Train and save ``models`` on the behaviour log (or on ``interactions``).

    With ``validate``, EASE and ALS are first fitted without each user's last event to
    report leave-last-out figures, then refitted on everything; SASRec always validates
    (its early stopping needs it). ``epochs`` caps SASRec's epochs. Raises ``ValueError``
    for an unknown model name or when there is nothing to train on.
    """
    unknown = [name for name in models if name not in NAMES]
    if unknown or not models:
        raise ValueError(
            f"unknown behaviour model {', '.join(unknown) or '(none)'}: "
            f"choose from {', '.join(NAMES)}"
        )
    if interactions is None:
        interactions = read_interactions(exclude_events=exclude_events, before=before)
    if not interactions:
        raise ValueError(
            "no positive behaviours to train on: import behaviours first "
            "(manage.py import_behaviours)"
        )
    trained = []
    for name in dict.fromkeys(models):
        started = time.perf_counter()
        if name == "sasrec":
            model = train_sasrec(
                sequences(interactions), epochs=epochs, seed=seed, progress=progress
            )
        else:
            train = train_ease if name == "ease" else train_als
            options = {"seed": seed} if name == "als" else {}
            figures = _validate(train, interactions, validation_users, options) if validate else {}
            model = train(interactions, progress=progress, **options)
            model.report.validation = figures
        model.report.seconds = time.perf_counter() - started
        save_model(model)
        trained.append(model)
    return trained
