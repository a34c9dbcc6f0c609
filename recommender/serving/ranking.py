"""Scoring candidates and re-ranking them: a fixed blend (or a learned scorer), then
maximal marginal relevance for diversity, per-category caps and business rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from recommender.conf import conf

# Feature order is part of the learned scorer's format: append, never reorder.
FEATURES = (
    "similarity",  # cosine to the user's profile vector
    "query_similarity",  # cosine to the request's free-text intent / search
    "cooccurrence",  # co-occurrence with the user's recent items, scaled to 0..1
    "popularity",  # log engagement in the popular window, scaled to 0..1
    "trending",  # recent / previous engagement, scaled to 0..1
    "freshness",  # 0.5 ** (age / 30 days)
    "category_affinity",  # share of the user's engagement in the item's category
    "dislike_similarity",  # max cosine to an item the user disliked
    "keyword_match",  # share of the query's keywords found in the title/tags
    # Context and user attributes (serving.context_features). The first three are the same
    # for every candidate of a request: they only count through the factorization machine's
    # interactions, so the blend gives them no weight.
    "hour_sin",  # sin(2π · hour of the request / 24), in the site's time zone
    "hour_cos",  # cos of the same angle
    "is_mobile",  # 1 when the context's device is mobile, phone, tablet or app
    "segment_category_affinity",  # share of the user's segment's engagement in the category
    "context_category_affinity",  # share of engagement from the same device in the category
    "recent_similarity",  # cosine to the mean of the user's last few items (newest most)
    # The behaviour models' scores for the user's history, standardised over the candidate
    # pool (serving.candidates._add_model_scores; 0 when the model is not trained or does
    # not know the item).
    "ease_score",
    "als_score",
    "sasrec_score",
)

# The context and user-attribute features, kept by a trained ranker only where they
# help on held-out users (learning.ranker.train_and_save).
CONTEXT_FEATURES = FEATURES[FEATURES.index("hour_sin") : FEATURES.index("recent_similarity")]

DEFAULT_WEIGHTS = {
    "similarity": 1.0,
    "query_similarity": 2.5,
    "cooccurrence": 0.35,
    "popularity": 0.15,
    "trending": 0.05,
    "freshness": 0.03,
    "category_affinity": 0.25,
    "dislike_similarity": -0.9,
    "keyword_match": 0.3,
    "recent_similarity": 0.5,
    # 0 while a model is untrained; manage.py tune fits them to the site.
    "ease_score": 0.2,
    "als_score": 0.2,
    "sasrec_score": 0.2,
}


@dataclass
class Candidate:
    """One item on its way to a list: where it came from, its features, its vector."""

    item_id: int
    sources: set[str] = field(default_factory=set)
    features: dict[str, float] = field(default_factory=dict)
    anchor_item_id: int | None = None  # the seed item of a co-occurrence candidate
    category: str = ""
    vector: np.ndarray | None = None
    score: float = 0.0

    def feature_vector(self) -> np.ndarray:
        return np.array([self.features.get(name, 0.0) for name in FEATURES], dtype=np.float32)


class Scorer(Protocol):
    """Anything that maps a (n, len(FEATURES)) matrix to n scores."""

    name: str

    def score(self, features: np.ndarray) -> np.ndarray: ...


class BlendScorer:
    """A fixed weighted sum of features (the default, and the fallback)."""

    name = "blend"

    def __init__(self, weights: dict[str, float] | None = None):
        configured = conf.BLEND_WEIGHTS or {}
        merged = {**DEFAULT_WEIGHTS, **configured, **(weights or {})}
        self.weights = np.array([merged.get(name, 0.0) for name in FEATURES], dtype=np.float32)

    def score(self, features: np.ndarray) -> np.ndarray:
        return features @ self.weights


def current_scorer() -> Scorer:
    """The newest learned scorer when one is trained (and enabled), else the blend."""
    # Imported here: serving.learned checks saved rankers against this module's FEATURES.
    from recommender.serving.learned import load_latest_scorer

    learned = load_latest_scorer()
    return learned if learned is not None else BlendScorer()


def score(candidates: Sequence[Candidate], scorer: Scorer | None = None) -> None:
    """Fill ``candidate.score`` in place."""
    if not candidates:
        return
    scorer = scorer or current_scorer()
    matrix = np.array(
        [[c.features.get(name, 0.0) for name in FEATURES] for c in candidates], dtype=np.float32
    )
    for candidate, value in zip(candidates, scorer.score(matrix), strict=True):
        candidate.score = float(value)


def mmr(
    candidates: Sequence[Candidate],
    k: int,
    *,
    diversity: float = 0.0,
    category_cap: int | None = None,
) -> list[Candidate]:
    """Greedy maximal marginal relevance: trade score against similarity to what is chosen.

    ``diversity`` 0 keeps the score order; 1 picks the item least like those already
    chosen. Scores are min-max scaled so the trade-off means the same on every list.
    ``category_cap`` limits how many items of one category the list may hold.
    """
    if not candidates or k <= 0:
        return []
    pool = sorted(candidates, key=lambda c: -c.score)
    scores = np.array([c.score for c in pool], dtype=np.float32)
    spread = float(scores.max() - scores.min())
    relevance = (scores - scores.min()) / spread if spread > 1e-9 else np.ones_like(scores)
    lam = 1.0 - min(max(diversity, 0.0), 1.0)
    # With no diversity asked for, similarity to the chosen items does not count.
    dim = next((c.vector.shape[0] for c in pool if c.vector is not None), 0) if lam < 1 else 0
    vectors = (
        np.stack([c.vector if c.vector is not None else np.zeros(dim, np.float32) for c in pool])
        if dim
        else None
    )
    chosen: list[int] = []
    per_category: dict[str, int] = {}
    max_sim = np.zeros(len(pool), dtype=np.float32)
    available = np.ones(len(pool), dtype=bool)
    while len(chosen) < k and available.any():
        value = lam * relevance - (1.0 - lam) * max_sim
        value[~available] = -np.inf
        best = int(np.argmax(value))
        available[best] = False
        category = pool[best].category
        if category_cap is not None and category and per_category.get(category, 0) >= category_cap:
            continue
        per_category[category] = per_category.get(category, 0) + 1
        chosen.append(best)
        if vectors is not None:
            max_sim = np.maximum(max_sim, vectors @ vectors[best])
    return [pool[index] for index in chosen]


def intra_list_distance(vectors: Sequence[np.ndarray]) -> float:
    """Mean pairwise cosine distance of a list (a diversity measure)."""
    if len(vectors) < 2:
        return 0.0
    matrix = np.stack(vectors)
    sims = matrix @ matrix.T
    n = len(vectors)
    return float((n * n - sims.sum()) / (n * (n - 1)))
