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

The ids found this way still pass the request's filters in SQL, in the statement every
other source's candidates go through (``nearest.candidate_rows``), so a snapshot that is a
moment old can offer an item that was switched off since, never serve one. That statement
then only checks and reads rows: the candidates' cosine features (to the profile, the
query, the recent items, the user's dislikes) are computed from the snapshot
(``Snapshot.features``), as pgvector computes them. It is read again when a version in the shared
cache moves (``spaces.catalogue_changed``: every item or vector saved or deleted, item
imports, vectors written by the embedding workers), at most once a ``RELOAD_EVERY`` for
changes made by other processes (a shop that saves items all the time must not have every
request read its catalogue; this process's own changes count at once), and after
``MAX_AGE`` seconds in any case (bulk ``UPDATE``s of items send no signal). A catalogue
above the limit is counted again once per ``MAX_AGE``, by a bounded query. The stored
vectors come along, for the explanations (``candidates.Pool.vectors_of``).

While a request may search the snapshot, the co-occurrence table is read from memory too
(``Cooccurrences``; at most ``COOCCURRENCE_ROWS_PER_ITEM`` rows per item of the limit):
the co-occurrence candidates were a list's largest statement (about 3 ms of PostgreSQL's
~10 ms per list on the demo shop). Their sum, strongest seed and order are computed as
``cooccurrence.cooccurrence_candidates`` computes them, and the same head goes through the
statement that checks every candidate. The table is read again when a refresh writes it
(``cooccurrence_changed``: the refresh functions, and any row saved or deleted through
the ORM), on the same terms as the snapshot.

Two more reads are spared this way: the recent items' vectors come from the snapshot and
the user's history, read anyway (``candidates.recent_in_memory``), and the ``Item`` rows of
what lists showed are kept with the snapshot (``Snapshot.items``, at most ``ITEMS_KEPT``),
so a list reads only the rows it shows for the first time since the catalogue changed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from recommender import dbroute, sharedcache, spaces
from recommender.conf import conf
from recommender.models import EncoderSpace, Item, ItemCooccurrence, ItemVector
from recommender.serving.filters import Filters
from recommender.serving.nearest import CosineFeatures, Search
from recommender.spaces import vector_io

VERSION_KEY = spaces.CATALOGUE_VERSION_KEY
COOCCURRENCE_VERSION_KEY = "recommender:cooccurrence-version"
sharedcache.read_ahead_keys(lambda: [VERSION_KEY, COOCCURRENCE_VERSION_KEY])
COOCCURRENCE_ROWS_PER_ITEM = 50  # the refresh's default ``per_item``
ITEMS_KEPT = 2000  # ``Snapshot.items`` at most
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
    # ``Item`` rows lists have shown, read as they are first shown (``candidates.load_items``):
    # what a list shows changes with the catalogue version, as the snapshot does.
    items: dict[int, Item] = field(default_factory=dict, compare=False, repr=False)

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

    def features(
        self, ids: Sequence[int], cosine: CosineFeatures, disliked: Collection[int]
    ) -> dict[int, tuple[np.ndarray | None, dict[str, float]]]:
        """(stored vector when ``cosine.vectors``, ``cosine``'s features) of those of
        ``ids`` the snapshot holds, as ``CosineFeatures.sql`` has PostgreSQL compute them:
        pgvector's cosine, clamped to [-1, 1]; none against a zero vector (NaN there);
        ``dislike_similarity`` the highest to the ``disliked`` items' vectors (none when the
        snapshot holds none of them, NaN when one is zero), at least 0."""
        if self.rows is None:
            return {}
        held = [(item_id, self.rows[item_id]) for item_id in ids if item_id in self.rows]
        if not held:
            return {}
        matrix = self.stored[[row for _, row in held]].astype(np.float64)
        norms = np.linalg.norm(matrix, axis=1)
        columns: list[tuple[str, np.ndarray]] = []

        def cosine_to(others: np.ndarray) -> np.ndarray:  # (held, others)
            with np.errstate(divide="ignore", invalid="ignore"):
                found = (matrix @ others.T) / np.outer(norms, np.linalg.norm(others, axis=1))
            found[~np.isfinite(found)] = np.nan
            return np.clip(found, -1.0, 1.0)

        for name, vector in (("similarity", cosine.profile), ("query_similarity", cosine.query)):
            if vector is not None:
                columns.append((name, cosine_to(np.asarray(vector, np.float64)[None, :])[:, 0]))
        if cosine.dislikes_of is not None:
            rows = [self.rows[item_id] for item_id in disliked if item_id in self.rows]
            if rows:
                nearest = cosine_to(self.stored[rows].astype(np.float64)).max(axis=1)
                columns.append(("dislike_similarity", np.maximum(nearest, 0.0)))
        if cosine.recent is not None:
            recent = np.asarray(cosine.recent, np.float64)[None, :]
            columns.append(("recent_similarity", cosine_to(recent)[:, 0]))
        values = [(name, column.tolist()) for name, column in columns]
        return {
            item_id: (
                self.stored[row].copy() if cosine.vectors else None,
                # NaN (a zero vector) is no feature.
                {name: column[at] for name, column in values if column[at] == column[at]},
            )
            for at, (item_id, row) in enumerate(held)
        }

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
_read = threading.local()  # the versions this thread's latest ``snapshot_for`` read


def snapshot_for(space: EncoderSpace | None, filters: Filters, as_of) -> Snapshot | None:
    """The space's snapshot when this request may search it (no narrowing filter, not a
    replay of the past, a catalogue within the limit), else None (search in SQL)."""
    if space is None or as_of is not None or filters.narrows_items or not filters.active_only:
        return None
    most = limit()
    if most <= 0:
        return None
    # Both versions in one round trip; the co-occurrence one is for ``cooccurrences_for``
    # later in the same request (this thread).
    found = sharedcache.get_many([VERSION_KEY, COOCCURRENCE_VERSION_KEY])
    version = found.get(VERSION_KEY)
    _read.cooccurrence_version = found.get(COOCCURRENCE_VERSION_KEY)
    now = time.monotonic()
    local = spaces.catalogue_changes()
    kept = _snapshots.get(space.pk)
    if _stale(kept, version, local, now):
        kept = _load(space, most, version, now, local)
        with _lock:
            _snapshots[space.pk] = kept
    return kept if kept.ids is not None else None


def _stale(kept, version, local: int, now: float) -> bool:
    """Whether what was ``kept`` (a snapshot or a co-occurrence table) must be read again."""
    return (
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
    )


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


# --- The co-occurrence table ------------------------------------------------------------


_cooccurrence_changes = 0  # made by this process (its own changes show at once)


def cooccurrence_changed(**_kwargs) -> None:
    """The co-occurrence table was written: every process reads it again (now, and once
    more after the transaction commits). A signal receiver too."""
    global _cooccurrence_changes
    _cooccurrence_changes += 1
    sharedcache.new_version(COOCCURRENCE_VERSION_KEY)


@dataclass(frozen=True)
class Cooccurrences:
    """The co-occurrence table as read at ``loaded_at`` under ``version``: each item's
    neighbours and their scores (float64); None for a table too large. Neighbours are
    held as positions in ``ids`` (every neighbour's id, ascending), so that a request's
    sums are one ``bincount`` (``np.unique`` over the terms cost 0.1 ms a list)."""

    version: str | None
    loaded_at: float
    local: int
    neighbours: dict[int, tuple[np.ndarray, np.ndarray]] | None = None
    ids: np.ndarray | None = None  # position → item id, ascending
    positions: dict[int, int] | None = None  # item id → position

    @classmethod
    def of(cls, version, loaded_at, local, table: dict[int, tuple[list, list]]) -> Cooccurrences:
        """From each item's (neighbour ids, scores)."""
        ids = np.unique(np.fromiter((o for others, _ in table.values() for o in others), np.int64))
        positions = {item_id: at for at, item_id in enumerate(ids.tolist())}
        neighbours = {
            int(item): (
                np.array([positions[o] for o in others], dtype=np.int64),
                np.array(scores, dtype=np.float64),
            )
            for item, (others, scores) in table.items()
        }
        return cls(version, loaded_at, local, neighbours, ids, positions)

    def pairs(self) -> dict[tuple[int, int], float]:
        """(item, neighbour) → score, every pair held."""
        return {
            (item, other): score
            for item, (at, scores) in self.neighbours.items()
            for other, score in zip(self.ids[at].tolist(), scores.tolist(), strict=True)
        }

    def head(
        self, seeds: dict[int, float], size: int, exclude: set[int]
    ) -> list[tuple[int, float, int, dict[int, float]]]:
        """The ``size`` items that co-occur most with ``seeds`` (item → weight), not in
        ``exclude`` nor seeds themselves: (item, the sum of score × seed weight, the seed
        with the largest term, each seed's term), the largest sum first, equal sums by
        id. As ``cooccurrence_candidates``' SQL ranks its head, before the item filters."""
        present = [seed for seed in seeds if seed in self.neighbours]
        if not present or size <= 0:
            return []
        lengths = [len(self.neighbours[seed][0]) for seed in present]
        at = np.concatenate([self.neighbours[seed][0] for seed in present])
        terms = np.concatenate([self.neighbours[seed][1] for seed in present]) * np.repeat(
            np.array([seeds[seed] for seed in present], dtype=np.float64), lengths
        )
        sources = np.repeat(np.array(present, dtype=np.int64), lengths)
        dropped = [self.positions[i] for i in {*exclude, *seeds} if i in self.positions]
        if dropped:
            allowed = np.ones(len(self.ids), dtype=bool)
            allowed[dropped] = False
            keep = allowed[at]
            at, terms, sources = at[keep], terms[keep], sources[keep]
        if not len(at):
            return []
        totals = np.bincount(at, weights=terms, minlength=len(self.ids))
        offered = np.flatnonzero(np.bincount(at, minlength=len(self.ids)))
        # Largest sum first, equal sums by id (positions ascend with ids).
        chosen = offered[np.lexsort((offered, -totals[offered]))][:size]
        # The chosen items' terms, each item's largest first (equal ones by seed id): its
        # anchor comes first.
        wanted = np.zeros(len(self.ids), dtype=bool)
        wanted[chosen] = True
        mine = wanted[at]
        at, sources, terms = at[mine], sources[mine], terms[mine]
        order = np.lexsort((sources, -terms, at))
        at, sources, terms = at[order], sources[order].tolist(), terms[order].tolist()
        starts = np.flatnonzero(np.r_[True, at[1:] != at[:-1]])
        bounds = zip(starts.tolist(), [*starts[1:].tolist(), len(sources)], strict=True)
        terms_of = {
            int(at[start]): dict(zip(sources[start:end], terms[start:end], strict=True))
            for start, end in bounds
        }
        return [
            (item, total, next(iter(terms_of[position])), terms_of[position])
            for position, item, total in zip(
                chosen.tolist(),
                self.ids[chosen].tolist(),
                totals[chosen].tolist(),
                strict=True,
            )
        ]


_cooccurrences: Cooccurrences | None = None


def cooccurrences_for(snapshot: Snapshot | None) -> Cooccurrences | None:
    """The co-occurrence table in memory for a request that searches ``snapshot`` (a small
    catalogue, no narrowing filter), else None (read it in SQL)."""
    global _cooccurrences
    if snapshot is None:
        return None
    version = getattr(_read, "cooccurrence_version", None)
    now = time.monotonic()
    kept = _cooccurrences
    if _stale(kept, version, _cooccurrence_changes, now):
        kept = _load_cooccurrences(limit() * COOCCURRENCE_ROWS_PER_ITEM, version, now)
        with _lock:
            _cooccurrences = kept
    return kept if kept.neighbours is not None else None


def _load_cooccurrences(most: int, version: str | None, now: float) -> Cooccurrences:
    """The whole co-occurrence table, one row per item with its neighbours (a bounded count
    first)."""
    table = ItemCooccurrence._meta.db_table
    local = _cooccurrence_changes
    with dbroute.read_connection().cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT %s) s", [most + 1])
        (count,) = cursor.fetchone()
        if count > most:
            return Cooccurrences(version, now, local)
        cursor.execute(
            f"SELECT item_id, array_agg(other_id ORDER BY other_id), "
            f"array_agg(score ORDER BY other_id) FROM {table} GROUP BY item_id"
        )
        rows = cursor.fetchall()
    return Cooccurrences.of(
        version, now, local, {item: (others, scores) for item, others, scores in rows}
    )
