"""The learned ranker as serving uses it: a trained scorer in plain numpy (no torch) or
LightGBM's tree ensemble, saved as versioned JSON and reloaded when a newer file appears.
The newest file may also be a decision that the fixed blend beat the trained model on
validation: then serving uses the blend.

``recommender.learning.ranker`` trains it; serving only loads it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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
    validation: dict = field(default_factory=dict)  # NDCG@10 against the blend, when trained

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
            "validation": self.validation,
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
            validation=data.get("validation") or {},
        )


@dataclass
class BoostedScorer:
    """LightGBM ``lambdarank`` trees, kept as LightGBM's own text model format (no pickle)."""

    features: list[str]
    model: str
    # The trees correct a linear base score (the blend's weights times a temperature):
    # training started from it, so zero rounds is the blend.
    base: list[float] = field(default_factory=list)
    rounds: int = 0
    path: str = ""
    validation: dict = field(default_factory=dict)
    kind: str = "lambdarank"
    loss: str = "lambdarank"

    def __post_init__(self) -> None:
        import lightgbm  # not torch: trees score in C++, a few microseconds a candidate

        self._booster = lightgbm.Booster(model_str=self.model)

    @property
    def name(self) -> str:
        return f"learned-{self.kind}"

    def score(self, features: np.ndarray) -> np.ndarray:
        x = features[:, : len(self.features)]
        base = x @ np.asarray(self.base, np.float32) if self.base else 0.0
        # One thread: a request scores a few hundred rows, and gunicorn workers are forked.
        return self._booster.predict(x, num_threads=1) + base

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "features": self.features,
            "model": self.model,
            "base": self.base,
            "rounds": self.rounds,
            "validation": self.validation,
        }

    @classmethod
    def from_json(cls, data: dict, path: str = "") -> BoostedScorer:
        return cls(
            features=list(data["features"]),
            model=data["model"],
            base=list(data.get("base") or []),
            rounds=int(data.get("rounds", 0)),
            path=path,
            validation=data.get("validation") or {},
        )


def from_json(data: dict, path: str = "") -> LearnedScorer | BoostedScorer | None:
    """The scorer a saved file holds; None for a decision to serve the blend."""
    if data.get("kind") == "blend":
        return None
    if data.get("kind") == "lambdarank":
        return BoostedScorer.from_json(data, path)
    return LearnedScorer.from_json(data, path)


def _write(kind: str, data: dict) -> Path:
    directory = ranker_dir()
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    path = directory / f"ranker-{stamp}-{kind}.json"
    path.write_text(json.dumps(data))
    from recommender.serving import list_cache  # lists kept may be ranked otherwise now

    list_cache.changed()
    return path


def save(scorer: LearnedScorer | BoostedScorer) -> Path:
    """Write the ranker as versioned JSON (no pickles: loading it runs no code)."""
    path = _write(scorer.kind, scorer.to_json())
    scorer.path = str(path)
    return path


def save_decision(validation: dict, *, rejected: str) -> Path:
    """Record that the blend beat the newly trained ranker: serving uses the blend."""
    return _write("blend", {"kind": "blend", "rejected": rejected, "validation": validation})


_cache: dict[str, tuple[float, LearnedScorer | BoostedScorer | None]] = {}


def latest_path() -> Path | None:
    directory = ranker_dir()
    if not directory.exists():
        return None
    paths = sorted(directory.glob("ranker-*.json"))
    return paths[-1] if paths else None


def load_latest_scorer() -> LearnedScorer | BoostedScorer | None:
    """The newest saved ranker (reloaded when a newer file appears), or None: none trained,
    or the newest file says the blend won."""
    if not conf.USE_LEARNED_RANKER:
        return None
    path = latest_path()
    if path is None:
        return None
    mtime = path.stat().st_mtime
    cached = _cache.get(str(path))
    if cached and cached[0] == mtime:
        return cached[1]
    scorer = from_json(json.loads(path.read_text()), str(path))
    if scorer is not None and scorer.features != list(FEATURES)[: len(scorer.features)]:
        scorer = None  # trained on another feature layout: ignore rather than misrank
    _cache.clear()
    _cache[str(path)] = (mtime, scorer)
    return scorer
