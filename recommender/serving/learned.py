"""The learned ranker as serving uses it: a trained scorer in plain numpy (no torch),
saved as versioned JSON and reloaded when a newer file appears.

``recommender.learning.ranker`` trains it; serving only loads it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from django.conf import settings

from recommender.conf import conf
from recommender.serving.ranking import FEATURES


def ranker_dir() -> Path:
    return Path(settings.RECSITE_DATA_DIR) / "models" / "ranker"


@dataclass
class LearnedScorer:
    """A trained ranker in plain numpy (no torch needed to serve)."""

    kind: str
    features: list[str]
    mean: np.ndarray
    std: np.ndarray
    weights: np.ndarray
    bias: float
    factors: np.ndarray | None = None  # (n_features, k) for the factorization machine
    path: str = ""
    loss: str = "pointwise"

    @property
    def name(self) -> str:
        return f"learned-{self.kind}"

    def score(self, features: np.ndarray) -> np.ndarray:
        # FEATURES only grows at the end: a ranker saved before features were appended
        # scores on the leading columns it was trained on and ignores the newer ones.
        x = (features[:, : len(self.features)] - self.mean) / self.std
        out = x @ self.weights + self.bias
        if self.factors is not None:
            projected = x @ self.factors
            squares = (x * x) @ (self.factors * self.factors)
            out = out + 0.5 * (projected * projected - squares).sum(axis=1)
        return out

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "features": self.features,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "weights": self.weights.tolist(),
            "bias": self.bias,
            "factors": None if self.factors is None else self.factors.tolist(),
            "loss": self.loss,
        }

    @classmethod
    def from_json(cls, data: dict, path: str = "") -> LearnedScorer:
        factors = data.get("factors")
        return cls(
            kind=data["kind"],
            features=list(data["features"]),
            mean=np.asarray(data["mean"], dtype=np.float32),
            std=np.asarray(data["std"], dtype=np.float32),
            weights=np.asarray(data["weights"], dtype=np.float32),
            bias=float(data["bias"]),
            factors=None if factors is None else np.asarray(factors, dtype=np.float32),
            path=path,
            loss=data.get("loss", "pointwise"),
        )


def save(scorer: LearnedScorer) -> Path:
    """Write the ranker as versioned JSON (no pickles: loading it runs no code)."""
    directory = ranker_dir()
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    path = directory / f"ranker-{stamp}-{scorer.kind}.json"
    path.write_text(json.dumps(scorer.to_json()))
    scorer.path = str(path)
    return path


_cache: dict[str, tuple[float, LearnedScorer]] = {}


def latest_path() -> Path | None:
    directory = ranker_dir()
    if not directory.exists():
        return None
    paths = sorted(directory.glob("ranker-*.json"))
    return paths[-1] if paths else None


def load_latest_scorer() -> LearnedScorer | None:
    """The newest saved ranker (reloaded when a newer file appears), or None."""
    if not conf.USE_LEARNED_RANKER:
        return None
    path = latest_path()
    if path is None:
        return None
    mtime = path.stat().st_mtime
    cached = _cache.get(str(path))
    if cached and cached[0] == mtime:
        return cached[1]
    scorer = LearnedScorer.from_json(json.loads(path.read_text()), str(path))
    if scorer.features != list(FEATURES)[: len(scorer.features)]:
        return None  # trained on another feature layout: ignore rather than misrank
    _cache.clear()
    _cache[str(path)] = (mtime, scorer)
    return scorer
