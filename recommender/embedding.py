"""Turning item texts into vectors of an encoder space and storing them (idempotently)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from django.utils import timezone

from encoders.registry import get_encoder
from recommender.models import EncoderSpace, Item, ItemVector

EMBED_BATCH = 256


@dataclass
class EmbedReport:
    """What one call to :func:`embed_items` did."""

    embedded: int = 0
    skipped: int = 0
    seconds: float = 0.0

    @property
    def texts_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def __iadd__(self, other: EmbedReport) -> EmbedReport:
        self.embedded += other.embedded
        self.skipped += other.skipped
        self.seconds += other.seconds
        return self


def item_text(item: Item, template: str) -> str:
    """The text the encoder reads for ``item`` (the fields covered by ``Item.text_hash``)."""
    return template.format(
        title=item.title,
        category=item.category,
        tags=" ".join(str(tag) for tag in item.tags or ()),
        description=item.description,
    ).strip()


def encoder_for(space: EncoderSpace):
    """The process-wide encoder instance of ``space`` (a worker loads each model once)."""
    return get_encoder(space.plugin, space.options)


def embed_items(
    space: EncoderSpace, item_ids: Sequence[int], *, force: bool = False
) -> EmbedReport:
    """Encode the given items into ``space`` and upsert their vectors.

    Safe to run twice: items whose stored vector was made from the current text are
    skipped unless ``force``; inactive or deleted items are ignored.
    """
    started = time.perf_counter()
    items = list(
        Item.objects.filter(pk__in=list(item_ids), is_active=True).only(
            "pk", "title", "category", "tags", "description", "text_hash"
        )
    )
    if not force:
        fresh = dict(
            ItemVector.objects.filter(space=space, item__in=items).values_list(
                "item_id", "text_hash"
            )
        )
        todo = [item for item in items if fresh.get(item.pk) != item.text_hash]
    else:
        todo = items
    report = EmbedReport(skipped=len(item_ids) - len(todo))
    if todo:
        vectors = encoder_for(space).encode([item_text(item, space.text_template) for item in todo])
        store_vectors(space, todo, vectors)
        report.embedded = len(todo)
    report.seconds = time.perf_counter() - started
    return report


def store_vectors(space: EncoderSpace, items: Sequence[Item], vectors: np.ndarray) -> None:
    """Upsert one vector per item; all-zero rows (empty texts) are not stored."""
    now = timezone.now()
    rows = [
        ItemVector(
            space=space, item_id=item.pk, embedding=vector, text_hash=item.text_hash, updated_at=now
        )
        for item, vector in zip(items, vectors, strict=True)
        if np.any(vector)
    ]
    ItemVector.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["space", "item"],
        update_fields=["embedding", "text_hash", "updated_at"],
    )


def batches(ids: Iterable[int], size: int = EMBED_BATCH) -> Iterable[list[int]]:
    batch: list[int] = []
    for item_id in ids:
        batch.append(item_id)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def embed_inline(
    space: EncoderSpace,
    item_ids: Sequence[int],
    *,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> EmbedReport:
    """Embed in this process, batch by batch (small sites, CI, the ``embed`` command)."""
    total = EmbedReport()
    for batch in batches(item_ids):
        total += embed_items(space, batch, force=force)
        if progress:
            progress(len(batch))
    return total
