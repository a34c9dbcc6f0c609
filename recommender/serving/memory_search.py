"""Exact nearest-neighbour search in process memory, for a small catalogue.

On a catalogue of a few thousand items a request's vector searches cost more as SQL than
as arithmetic: on the demo shop (341 items) the two search statements (a profile search
and a recent-items search, each with its transaction's settings) took about 8 ms of
PostgreSQL's ~17 ms CPU per list, for what a (341 × 512) matrix product does in
microseconds. So while a space holds at most ``RECOMMENDER_IN_PROCESS_SEARCH_ITEMS``
vectors (5,000 by default; 0: never), each process keeps them in memory with what
decides whether an item may be recommended (active, hidden, its availability window),
and a request without narrowing filters (no category, price range or rule; not a replay
of the past) finds its nearest items there: exact, so at least as good as the HNSW
search. Nothing is written here by hand that a library does better: the search is one
numpy product and a partial sort (pgvector's own exact search is the sequential scan this
replaces).

The ids found this way still pass the request's filters and get their cosine features in
SQL, in the statement every other source's candidates go through
(``nearest.candidate_rows``), so a snapshot that is a moment old can offer an item that
was switched off since, never serve one. It is read again when a version in the shared
cache moves (``spaces.catalogue_changed``: every item or vector saved or deleted, item
imports, vectors written by the embedding workers), at most once a ``RELOAD_EVERY`` for
changes made by other processes (a shop that saves items all the time must not have every
request read its catalogue; this process's own changes count at once), and after
``MAX_AGE`` seconds in any case (bulk ``UPDATE``s of items send no signal). A catalogue
above the limit is counted again once per ``MAX_AGE``, by a bounded query. The stored
vectors come along, for the explanations (``candidates.Pool.vectors_of``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from recommender import dbroute, sharedcache, spaces
from recommender.conf import conf
from recommender.models import EncoderSpace, Item, ItemVector
from recommender.serving.filters import Filters
from recommender.serving.nearest import Search
from recommender.spaces import vector_io

VERSION_KEY = spaces.CATALOGUE_VERSION_KEY
MAX_AGE = 60.0  # seconds a snapshot is kept at most, whatever the version says
RELOAD_EVERY = 1.0  # seconds between two reads for changes made in other processes
_NEVER = np.float64(np.inf)


def limit() -> int:
    return max(int(conf.IN_PROCESS_SEARCH_ITEMS), 0)


@dataclass(frozen=True)
class Snapshot:
    """One space's vectors and what decides whether their items may be recommended, as
    read at ``loaded_at`` under ``version``; ``ids`` is None for a catalogue too large."""

    version: str | None
    loaded_at: float
    local: int  # ``spaces.catalogue_changes()`` when it was read
    ids: np.ndarray | None = None  # item ids, int64
    unit: np.ndarray | None = None  # (n, d) float32, each row its vector / its norm (0: none)
    active: np.ndarray | None = None  # bool: is_active
    hidden: np.ndarray | None = None  # bool: is_hidden
    opens: np.ndarray | None = None  # available_from as epoch seconds, -inf when none
    closes: np.ndarray | None = None  # available_until as epoch seconds, +inf when none
    pointing: np.ndarray | None = None  # bool: the vector is not zero
    stored: np.ndarray | None = None  # (n, d) float32, the vectors as stored
    rows: dict[int, int] | None = None  # item id → its row

    def vectors(self, ids) -> dict[int, np.ndarray]:
        """The stored vectors of those of ``ids`` the snapshot holds (copies), as
        ``profiles.item_vectors`` reads them."""
        if self.rows is None:
            return {}
        found = {}
        for item_id in ids:
            row = self.rows.get(item_id)
            if row is not None:
                found[item_id] = self.stored[row].copy()
        return found

    def search(
        self,
        searches: Sequence[Search],
        exclude: set[int],
        *,
        recommendable: bool,
        now: datetime,
    ) -> list[list[int]]:
        """Each search's nearest item ids by cosine, nearest first: at most ``search.k`` of
        the items that are active, inside their window at ``now``, not hidden (when
        ``recommendable``) and not in ``exclude``. As the SQL search orders and filters
        them (``nearest.nearest_searches``), without the approximation."""
        if not searches or self.ids is None or not len(self.ids):
            return [[] for _ in searches]
        at = now.timestamp()
        # A zero vector has no direction (SQL's distance to it is NaN): never a neighbour.
        allowed = self.active & (self.opens <= at) & (self.closes > at) & self.pointing
        if recommendable:
            allowed &= ~self.hidden
        if exclude:
            allowed &= ~np.isin(self.ids, np.fromiter(exclude, dtype=np.int64, count=len(exclude)))
        queries = np.stack([_unit(np.asarray(s.vector, dtype=np.float32)) for s in searches])
        similarity = self.unit @ queries.T  # (n, searches)
        similarity[~allowed] = -np.inf
        found = []
        for column, search in enumerate(searches):
            scores = similarity[:, column]
            count = min(search.k, int(np.count_nonzero(np.isfinite(scores))))
            if count <= 0:
                found.append([])
                continue
            if count < len(scores):
                top = np.argpartition(-scores, count - 1)[:count]
            else:
                top = np.arange(len(scores))
            # Nearest first; equal similarities by id, so that every process agrees.
            order = np.lexsort((self.ids[top], -scores[top]))
            found.append([int(item_id) for item_id in self.ids[top[order]]])
        return found

    def nearest(
        self, vector, k: int, exclude: set[int], *, recommendable: bool, now: datetime
    ) -> list[tuple[int, float]]:
        """The ``k`` nearest items to ``vector`` with their cosine similarity, as
        ``search`` finds them (``nearest.nearest_items``' answer)."""
        (ids,) = self.search([Search(vector, k)], exclude, recommendable=recommendable, now=now)
        if not ids:
            return []
        query = _unit(np.asarray(vector, dtype=np.float32))
        rows = [self.rows[item_id] for item_id in ids]
        return list(zip(ids, (self.unit[rows] @ query).tolist(), strict=True))


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 1e-12 else vector


_lock = threading.Lock()
_snapshots: dict[int, Snapshot] = {}


def snapshot_for(space: EncoderSpace | None, filters: Filters, as_of) -> Snapshot | None:
    """The space's snapshot when this request may search it (no narrowing filter, not a
    replay of the past, a catalogue within the limit), else None (search in SQL)."""
    if space is None or as_of is not None or filters.narrows_items or not filters.active_only:
        return None
    most = limit()
    if most <= 0:
        return None
    version = sharedcache.get(VERSION_KEY)
    now = time.monotonic()
    local = spaces.catalogue_changes()
    kept = _snapshots.get(space.pk)
    if (
        kept is None
        or now - kept.loaded_at >= MAX_AGE
        or kept.local != local
        or (
            # A change made elsewhere, read again at most once a RELOAD_EVERY: a shop saving
            # items all the time must not have each request read its catalogue. Meanwhile
            # the snapshot may offer an item switched off since (never served: see above)
            # and miss one added since, for at most that long.
            kept.version != version and now - kept.loaded_at >= RELOAD_EVERY
        )
    ):
        kept = _load(space, most, version, now, local)
        with _lock:
            _snapshots[space.pk] = kept
    return kept if kept.ids is not None else None


def _load(space: EncoderSpace, most: int, version: str | None, now: float, local: int) -> Snapshot:
    """The space's snapshot read from the database (a bounded count first)."""
    vectors, items = ItemVector._meta.db_table, Item._meta.db_table
    db = dbroute.read_connection()
    with db.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {vectors} WHERE space_id = %s LIMIT %s) s",
            [space.pk, most + 1],
        )
        (count,) = cursor.fetchone()
    if count > most:
        return Snapshot(version, now, local)
    rows = vector_io.fetch(
        f"SELECT v.item_id, v.embedding, i.is_active, i.is_hidden, i.available_from, "
        f"i.available_until FROM {vectors} v JOIN {items} i ON i.id = v.item_id "
        "WHERE v.space_id = %s ORDER BY v.item_id",
        [space.pk],
        using=db,
    )
    if not rows:
        return Snapshot(version, now, local, np.zeros(0, dtype=np.int64))
    matrix = np.stack([vector_io.decode(row[1]) for row in rows])
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 1e-12)
    return Snapshot(
        version,
        now,
        local,
        ids=np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows)),
        unit=unit,
        active=np.fromiter((row[2] for row in rows), dtype=bool, count=len(rows)),
        hidden=np.fromiter((row[3] for row in rows), dtype=bool, count=len(rows)),
        opens=np.array([-_NEVER if row[4] is None else row[4].timestamp() for row in rows]),
        closes=np.array([_NEVER if row[5] is None else row[5].timestamp() for row in rows]),
        pointing=norms[:, 0] > 1e-12,
        stored=matrix,
        rows={int(row[0]): position for position, row in enumerate(rows)},
    )
