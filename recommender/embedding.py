"""Turning item texts into vectors of an encoder space and storing them (idempotently)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from django.utils import timezone

from encoders.registry import get_encoder
from recommender import vector_io
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
    """Upsert one vector per item; all-zero rows (empty texts) are not stored.

    One statement per batch, vectors sent in binary (``vector_io.VectorArray``).
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    keep = np.flatnonzero(np.any(vectors != 0, axis=1))
    if not len(keep):
        return
    table = ItemVector._meta.db_table
    vector_io.execute(
        f"""
        INSERT INTO {table} (space_id, item_id, embedding, text_hash, updated_at)
        SELECT %s, u.item_id, u.embedding, u.text_hash, %s
        FROM unnest(%s::bigint[], %s, %s::text[]) AS u(item_id, embedding, text_hash)
        ON CONFLICT (space_id, item_id) DO UPDATE SET embedding = EXCLUDED.embedding,
            text_hash = EXCLUDED.text_hash, updated_at = EXCLUDED.updated_at
        """,
        [
            space.pk,
            timezone.now(),
            [items[i].pk for i in keep],
            vector_io.VectorArray(vectors[keep]),
            [items[i].text_hash for i in keep],
        ],
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
