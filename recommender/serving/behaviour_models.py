"""Behaviour models as serving uses them: EASE, implicit ALS and SASRec, scored in plain
numpy (no torch, no scipy, no ``implicit``), saved as versioned ``.npz`` files and
reloaded when a newer file appears.

``recommender.learning.behaviour_models`` trains them; serving only loads them. Every
model answers from a user's *history*: their positive item ids (``Item`` primary keys) in
chronological order, most recent last. Ids the model was not trained on are ignored, so a
new event counts at once, without retraining and without per-user state:

- ``ease``: item-to-item weights ``B`` (Steck 2019), pruned to the strongest per target
  item; a user's scores are the sum of the rows of ``B`` of their items.
- ``als``: item factors ``Y`` from implicit-feedback ALS (Hu, Koren & Volinsky 2008); the
  user's factors are solved in closed form from their history (fold-in), then ``Y @ x``.
- ``sasrec``: a causal self-attention encoder over the last items (Kang & McAuley 2018);
  the numpy forward pass here is the torch model's, checked against it in the tests.

Files are ``<data dir>/models/<name>/<name>-<UTC stamp>.npz`` holding arrays and a JSON
``meta`` string; they load with ``allow_pickle=False``, so loading one runs no code.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from django.conf import settings

NAMES: tuple[str, ...] = ("ease", "als", "sasrec")

# Older versions kept beside the newest, so a worker that just loaded one never finds it gone.
KEEP_VERSIONS = 3


@runtime_checkable
class BehaviourModel(Protocol):
    """What every behaviour model answers, from a user's positive item ids (oldest first)."""

    name: str
    item_ids: np.ndarray  # the Item pks the model knows, in the order of ``scores``

    def scores(self, history: Sequence[int]) -> np.ndarray:
        """One score per known item, in the order of ``item_ids`` (all 0 without history)."""

    def top(self, history: Sequence[int], n: int, exclude: set[int]) -> list[tuple[int, float]]:
        """The ``n`` best (item id, score) pairs, leaving out ``exclude`` and items scored 0."""

    def score_items(self, history: Sequence[int], item_ids: Sequence[int]) -> np.ndarray:
        """Scores of ``item_ids`` in that order; 0 for items the model does not know."""

    def known(self, item_ids: Sequence[int]) -> np.ndarray:
        """Whether the model knows each of ``item_ids``."""


def _matvec(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``matrix @ vector`` without BLAS: a request's products are small, and a
    multithreaded BLAS (OpenBLAS) wakes its thread pool for each one, which on a busy
    server costs milliseconds where einsum's single-threaded loop takes ~0.15 ms for
    10k × 64."""
    return np.einsum("ij,j->i", matrix, vector)


class _ItemIndex:
    """The shared part: the known items, their positions, and ranking by a score vector."""

    name: str = ""

    def __init__(self, item_ids: np.ndarray, meta: dict, path: str = "") -> None:
        self.item_ids = np.asarray(item_ids, dtype=np.int64)
        self.meta = meta
        self.path = path
        self._position = {int(pk): index for index, pk in enumerate(self.item_ids.tolist())}

    def positions(self, item_ids: Iterable[int]) -> np.ndarray:
        """Positions of the known ids among ``item_ids``, in order (unknown ones dropped)."""
        found = [self._position.get(int(pk)) for pk in item_ids]
        return np.asarray([index for index in found if index is not None], dtype=np.int64)

    def scores(self, history: Sequence[int]) -> np.ndarray:
        """One score per known item, in the order of ``item_ids`` (all 0 without history)."""
        return self._scores(self.positions(history))

    def _scores(self, positions: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def top(self, history: Sequence[int], n: int, exclude: set[int]) -> list[tuple[int, float]]:
        """The ``n`` best (item id, score) pairs, best first. Only ``exclude`` is left out
        (pass the history in it to drop seen items), and items scored exactly 0, about
        which the model has nothing to say; [] when no history item is known."""
        positions = self.positions(history)
        if n <= 0 or len(positions) == 0:
            return []
        scores = self._scores(positions).astype(np.float64, copy=True)
        blocked = self.positions(exclude)
        if len(blocked):
            scores[blocked] = -np.inf
        scores[scores == 0.0] = -np.inf  # the model says nothing about these items
        n = min(n, len(scores))
        best = np.argpartition(-scores, n - 1)[:n]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [
            (int(self.item_ids[index]), float(scores[index]))
            for index in best
            if np.isfinite(scores[index])
        ]

    def known(self, item_ids: Sequence[int]) -> np.ndarray:
        """Whether the model knows each of ``item_ids`` (learned it in training)."""
        return np.fromiter(
            (int(pk) in self._position for pk in item_ids), dtype=bool, count=len(item_ids)
        )

    def score_items(self, history: Sequence[int], item_ids: Sequence[int]) -> np.ndarray:
        """Scores of ``item_ids`` in that order; 0 for items the model does not know."""
        out = np.zeros(len(item_ids), dtype=np.float32)
        positions = self.positions(history)
        if len(positions) == 0 or len(item_ids) == 0:
            return out
        scores = self._scores(positions)
        for row, pk in enumerate(item_ids):
            index = self._position.get(int(pk))
            if index is not None:
                out[row] = scores[index]
        return out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {len(self.item_ids)} items {self.path or '(unsaved)'}>"


class EaseModel(_ItemIndex):
    """EASE: a user's score for item j is the sum of ``B[i, j]`` over their items i.

    ``B`` is kept as the CSR arrays of its pruned rows (``indptr``, ``indices``, ``data``).
    """

    name = "ease"

    def __init__(self, item_ids, indptr, indices, data, meta: dict, path: str = "") -> None:
        super().__init__(item_ids, meta, path)
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.indices = np.asarray(indices, dtype=np.int32)
        self.data = np.asarray(data, dtype=np.float32)

    def _scores(self, positions: np.ndarray) -> np.ndarray:
        n = len(self.item_ids)
        if len(positions) == 0:
            return np.zeros(n, dtype=np.float32)
        # A repeated item counts once: B was learned from a binary user-item matrix.
        rows = np.unique(positions)
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        take = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])
        return np.bincount(self.indices[take], weights=self.data[take], minlength=n).astype(
            np.float32
        )

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "item_ids": self.item_ids,
            "indptr": self.indptr,
            "indices": self.indices,
            "data": self.data,
        }

    @classmethod
    def from_arrays(cls, arrays, meta: dict, path: str = "") -> EaseModel:
        return cls(
            arrays["item_ids"], arrays["indptr"], arrays["indices"], arrays["data"], meta, path
        )


class AlsModel(_ItemIndex):
    """Implicit ALS: the user's factors are folded in from their history at request time.

    x = (YᵀY + Yᵀ(C − I)Y + λI)⁻¹ YᵀCp over the user's items, with confidence
    ``alpha × history_weight × (times the item appears)``; scores are ``Y @ x``.
    """

    name = "als"

    def __init__(self, item_ids, item_factors, meta: dict, path: str = "") -> None:
        super().__init__(item_ids, meta, path)
        self.item_factors = np.asarray(item_factors, dtype=np.float32)
        factors = self.item_factors.astype(np.float64)
        self.regularization = float(meta["regularization"])
        self.alpha = float(meta["alpha"])
        self.history_weight = float(meta.get("history_weight", 1.0))
        # YᵀY + λI is the same for every user: computed once per loaded model.
        self._gram = factors.T @ factors + self.regularization * np.eye(factors.shape[1])

    def user_factors(self, history: Sequence[int]) -> np.ndarray:
        """The closed-form ALS user solve from the history (zeros without known items)."""
        return self._fold_in(self.positions(history))

    def _fold_in(self, positions: np.ndarray) -> np.ndarray:
        k = self.item_factors.shape[1]
        if len(positions) == 0:
            return np.zeros(k, dtype=np.float64)
        rows, counts = np.unique(positions, return_counts=True)
        confidence = self.alpha * self.history_weight * counts.astype(np.float64)
        y = self.item_factors[rows].astype(np.float64)
        a = self._gram + (y.T * (confidence - 1.0)) @ y
        b = y.T @ confidence
        return np.linalg.solve(a, b)

    def _scores(self, positions: np.ndarray) -> np.ndarray:
        if len(positions) == 0:
            return np.zeros(len(self.item_ids), dtype=np.float32)
        return _matvec(self.item_factors, self._fold_in(positions).astype(np.float32))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"item_ids": self.item_ids, "item_factors": self.item_factors}

    @classmethod
    def from_arrays(cls, arrays, meta: dict, path: str = "") -> AlsModel:
        return cls(arrays["item_ids"], arrays["item_factors"], meta, path)


# The parameter names of the SASRec network, per block ``b{n}_``; the torch model in
# recommender.learning.behaviour_models exports exactly these.
SASREC_BLOCK_PARAMS = (
    "ln1_w",
    "ln1_b",
    "q_w",
    "q_b",
    "k_w",
    "k_b",
    "v_w",
    "v_b",
    "o_w",
    "o_b",
    "ln2_w",
    "ln2_b",
    "ff1_w",
    "ff1_b",
    "ff2_w",
    "ff2_b",
)
LAYER_NORM_EPS = 1e-8


def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``x @ weight.T + bias`` (torch's Linear), through einsum: see ``_matvec``."""
    return np.einsum("ld,od->lo", x, weight) + bias


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * weight + bias


class SasrecModel(_ItemIndex):
    """SASRec: pre-norm causal self-attention over the last ``max_length`` items.

    Row 0 of ``item_embeddings`` is padding; row i + 1 is ``item_ids[i]``. Positions are
    right-aligned (the most recent item always sits at the last position), and no item
    attends to padding, so the output for a short history needs no padding at all.
    """

    name = "sasrec"

    def __init__(self, item_ids, weights: dict[str, np.ndarray], meta: dict, path: str = ""):
        super().__init__(item_ids, meta, path)
        self.weights = {key: np.asarray(value, dtype=np.float32) for key, value in weights.items()}
        self.max_length = int(meta["max_length"])
        self.blocks = int(meta["blocks"])
        self.heads = int(meta["heads"])
        self.item_embeddings = self.weights["item_embeddings"]
        self.dim = self.item_embeddings.shape[1]

    def encode(self, positions: np.ndarray, *, last_only: bool = False) -> np.ndarray:
        """Hidden states of embedding rows (``positions``, oldest first): one per item, the
        last being the next-item query; ``last_only``: just that one (the last block then
        works on one row)."""
        w = self.weights
        positions = positions[-self.max_length :]
        length = len(positions)
        x = self.item_embeddings[positions + 1] * np.float32(np.sqrt(self.dim))
        x = x + w["position_embeddings"][self.max_length - length :]
        head_dim = self.dim // self.heads
        causal = np.triu(np.full((length, length), -np.inf, dtype=np.float32), k=1)
        for block in range(self.blocks):

            def p(name: str, block: int = block) -> np.ndarray:
                return w[f"b{block}_{name}"]

            rows = slice(-1, None) if last_only and block == self.blocks - 1 else slice(None)
            h = _layer_norm(x[rows], p("ln1_w"), p("ln1_b"))
            q = _linear(h, p("q_w"), p("q_b")).reshape(len(h), self.heads, head_dim)
            k = _linear(x, p("k_w"), p("k_b")).reshape(length, self.heads, head_dim)
            v = _linear(x, p("v_w"), p("v_b")).reshape(length, self.heads, head_dim)
            logits = np.einsum("qhd,khd->hqk", q, k) / np.float32(np.sqrt(head_dim))
            logits = logits + causal[rows]
            logits = logits - logits.max(axis=-1, keepdims=True)
            attention = np.exp(logits)
            attention = attention / attention.sum(axis=-1, keepdims=True)
            mixed = np.einsum("hqk,khd->qhd", attention, v).reshape(len(h), self.dim)
            x = h + _linear(mixed, p("o_w"), p("o_b"))
            h = _layer_norm(x, p("ln2_w"), p("ln2_b"))
            hidden = np.maximum(_linear(h, p("ff1_w"), p("ff1_b")), 0.0)
            x = x + _linear(hidden, p("ff2_w"), p("ff2_b"))
        if last_only:
            x = x[-1:]
        return _layer_norm(x, w["final_ln_w"], w["final_ln_b"])

    def _scores(self, positions: np.ndarray) -> np.ndarray:
        if len(positions) == 0:
            return np.zeros(len(self.item_ids), dtype=np.float32)
        return _matvec(self.item_embeddings[1:], self.encode(positions, last_only=True)[0])

    def arrays(self) -> dict[str, np.ndarray]:
        return {"item_ids": self.item_ids, **self.weights}

    @classmethod
    def from_arrays(cls, arrays, meta: dict, path: str = "") -> SasrecModel:
        weights = {key: arrays[key] for key in arrays if key not in {"item_ids", "meta"}}
        return cls(arrays["item_ids"], weights, meta, path)


CLASSES: dict[str, type[_ItemIndex]] = {
    "ease": EaseModel,
    "als": AlsModel,
    "sasrec": SasrecModel,
}


def from_arrays(name: str, arrays, meta: dict, path: str = "") -> BehaviourModel:
    """The serving model ``name`` built from its arrays (as saved, or fresh from training)."""
    if name not in CLASSES:
        raise ValueError(f"unknown behaviour model {name!r}: one of {', '.join(NAMES)}")
    return CLASSES[name].from_arrays(arrays, meta, path)


# --- Files -----------------------------------------------------------------------------------


def model_dir(name: str) -> Path:
    return Path(settings.RECSITE_DATA_DIR) / "models" / name


def latest_path(name: str) -> Path | None:
    """The newest saved version of model ``name``, or None."""
    directory = model_dir(name)
    if not directory.exists():
        return None
    paths = sorted(directory.glob(f"{name}-*.npz"))
    return paths[-1] if paths else None


def save(name: str, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write a new version of model ``name`` (atomically: readers see the old or the new
    file, never half of one) and drop all but the newest ``KEEP_VERSIONS``."""
    if name not in CLASSES:
        raise ValueError(f"unknown behaviour model {name!r}: one of {', '.join(NAMES)}")
    directory = model_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    path = directory / f"{name}-{stamp}.npz"
    handle, temporary = tempfile.mkstemp(dir=directory, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    for old in sorted(directory.glob(f"{name}-*.npz"))[:-KEEP_VERSIONS]:
        old.unlink(missing_ok=True)
    from recommender.serving import list_cache  # lists kept may hold other candidates now

    list_cache.changed()
    return path


def read(path: Path) -> BehaviourModel:
    """Load one saved model file."""
    with np.load(path, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    meta = json.loads(str(arrays.pop("meta")))
    return from_arrays(meta["name"], arrays, meta, str(path))


_cache: dict[str, tuple[str, float, BehaviourModel]] = {}


def load(name: str) -> BehaviourModel | None:
    """The newest saved model ``name`` (cached per process, reloaded when a newer file
    appears), or None when it has not been trained."""
    if name not in CLASSES:
        raise ValueError(f"unknown behaviour model {name!r}: one of {', '.join(NAMES)}")
    path = latest_path(name)
    if path is None:
        _cache.pop(name, None)
        return None
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:  # replaced between the listing and now: take the newer one
        return load(name)
    cached = _cache.get(name)
    if cached and cached[0] == str(path) and cached[1] == mtime:
        return cached[2]
    model = read(path)
    _cache[name] = (str(path), mtime, model)
    return model


def load_all() -> dict[str, BehaviourModel]:
    """Every trained behaviour model by name (untrained ones left out)."""
    found = {}
    for name in NAMES:
        model = load(name)
        if model is not None:
            found[name] = model
    return found


# The models an offline replay installs (trained without its held-out events) in place of
# the saved ones; None: the saved ones.
_replayed: ContextVar[dict[str, BehaviourModel] | None] = ContextVar("replayed", default=None)


def active() -> dict[str, BehaviourModel]:
    """The models serving uses now: the saved ones, or those a replay installed."""
    replayed = _replayed.get()
    return load_all() if replayed is None else replayed


@contextmanager
def replaying(models: dict[str, BehaviourModel]) -> Iterator[None]:
    """Serve ``models`` instead of the saved ones inside the block (evaluation, training
    the ranker: models that never saw the held-out events)."""
    token = _replayed.set(dict(models))
    try:
        yield
    finally:
        _replayed.reset(token)
