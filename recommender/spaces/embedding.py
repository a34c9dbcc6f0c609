"""Turning item texts into vectors of an encoder space and storing them (idempotently);
user texts (searches, reviews) through a shared cache."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from django.core.cache import cache
from django.utils import timezone

from encoders.registry import get_encoder
from recommender.models import EncoderSpace, Item, ItemVector
from recommender.spaces import TranslatedText, catalogue_changed, vector_io

EMBED_BATCH = 256
# How long a user text's vector stays in the shared cache. Longer than the periodic profile
# recompute's interval, so the recompute of an active user re-encodes nothing.
TEXT_VECTOR_TTL = 7 * 86400

logger = logging.getLogger(__name__)


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
    """The text the encoder reads for ``item`` (the fields covered by ``Item.text_hash``).

    ``{title[en]}`` and ``{description[en]}`` are the item's texts in that language
    (``Item.text_in``: the translation, else the main text); ``item.translations`` is
    read only by a template that names them.
    """
    return template.format(
        title=TranslatedText(item.title, lambda lang: item.text_in(lang)[0]),
        category=item.category,
        tags=" ".join(str(tag) for tag in item.tags or ()),
        description=TranslatedText(item.description, lambda lang: item.text_in(lang)[1]),
    ).strip()


def encoder_for(space: EncoderSpace):
    """The process-wide encoder instance of ``space`` (a worker loads each model once)."""
    return get_encoder(space.plugin, space.options)


def text_cache_key(space: EncoderSpace, text: str) -> str:
    """The shared-cache key of ``text``'s vector in ``space``.

    Besides the space's pk it names a digest of the space's plugin and options: an
    encoder changed in place (an edited option) must not be served its old vectors.
    """
    encoder = hashlib.sha256(
        json.dumps([space.plugin, space.options], sort_keys=True, default=str).encode()
    ).hexdigest()[:12]
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"recsite:text-vector:{space.pk}:{encoder}:{digest}"


def encode_cached(space: EncoderSpace, texts: Sequence[str]) -> np.ndarray:
    """Vectors of ``texts`` in ``space``, shape ``(len(texts), dim)``, each distinct text
    encoded at most once per ``TEXT_VECTOR_TTL`` across all processes.

    Profile recomputes replay a user's searches and reviews again and again; encoding is
    by far their largest cost. Vectors are cached as float32 bytes, keyed by
    ``text_cache_key``, with one ``get_many`` and one ``set_many`` per call. The cache is
    an optimisation only: if it fails (Redis down), texts are encoded directly, so
    recording an event never depends on it.
    """
    if isinstance(texts, str):
        raise TypeError("encode_cached() takes a sequence of texts, not a single str")
    if not texts:
        return np.zeros((0, space.dim), dtype=np.float32)
    keys = {text: text_cache_key(space, text) for text in dict.fromkeys(texts)}
    try:
        found = cache.get_many(list(keys.values()))
    except Exception:  # any backend error: the cache must never cost an event
        logger.warning("text vector cache unavailable; encoding directly", exc_info=True)
        found = {}
    vectors: dict[str, np.ndarray] = {}
    for text, key in keys.items():
        raw = found.get(key)
        if isinstance(raw, bytes) and len(raw) == 4 * space.dim:
            vectors[text] = np.frombuffer(raw, dtype=np.float32).copy()
    missing = [text for text in keys if text not in vectors]
    if missing:
        encoded = np.asarray(encoder_for(space).encode(missing), dtype=np.float32)
        vectors.update(zip(missing, encoded, strict=True))
        try:
            cache.set_many(
                {keys[text]: vectors[text].tobytes() for text in missing}, timeout=TEXT_VECTOR_TTL
            )
        except Exception:  # as above: a failed write only means encoding again next time
            logger.warning("could not cache %d text vectors", len(missing), exc_info=True)
    return np.stack([vectors[text] for text in texts])


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
            "pk", "title", "category", "tags", "description", "translations", "text_hash"
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
    catalogue_changed()


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
