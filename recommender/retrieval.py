"""Candidate generation. This part: cosine search over the active space's HNSW index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.db.models.functions import Cast
from pgvector.django import CosineDistance, VectorField

from recommender import embedding, spaces
from recommender.models import EncoderSpace, ItemVector


@dataclass(frozen=True)
class ScoredItem:
    """An item id with its cosine similarity to the query vector."""

    item_id: int
    similarity: float


def vector_query(space: EncoderSpace, vector: np.ndarray | Sequence[float]):
    """Vectors of ``space`` annotated with cosine distance, ordered nearest first.

    The cast to ``vector(dim)`` matches the space's partial HNSW index expression; without
    it PostgreSQL cannot use the index.
    """
    column = Cast("embedding", VectorField(dimensions=space.dim))
    return (
        ItemVector.objects.filter(space=space)
        .annotate(distance=CosineDistance(column, np.asarray(vector, dtype=np.float32)))
        .order_by("distance")
    )


def nearest_items(
    vector: np.ndarray | Sequence[float],
    k: int = 10,
    *,
    space: EncoderSpace | None = None,
    exclude: Sequence[int] = (),
    active_only: bool = True,
) -> list[ScoredItem]:
    """The ``k`` items nearest to ``vector`` by cosine in ``space`` (default: active)."""
    space = space or spaces.active_space()
    query = vector_query(space, vector)
    if active_only:
        query = query.filter(item__is_active=True)
    if exclude:
        query = query.exclude(item_id__in=list(exclude))
    rows = query.values_list("item_id", "distance")[:k]
    return [ScoredItem(item_id, 1.0 - float(distance)) for item_id, distance in rows]


def search_text(text: str, k: int = 10, *, space: EncoderSpace | None = None) -> list[ScoredItem]:
    """Items nearest to a free text, encoded by the space's own encoder."""
    space = space or spaces.active_space()
    vector = embedding.encoder_for(space).encode([text])[0]
    return nearest_items(vector, k, space=space)
