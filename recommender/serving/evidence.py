"""How strong the evidence behind a reason must be before the reason names an anchor item,
and what the other shoppers did behind a co-occurrence.

A similarity reason ("Because you viewed X") needs the item's cosine to X above the
threshold calibrated for the encoder space: ``manage.py calibrate_explanations`` (in
``recommender.learning.explanations``) measures it and writes
``RECSITE_DATA_DIR/models/explain/<space>.json``; every process reads that file here and
reloads it when it changes. Without a file (or with one written for another encoder or
dimension under the same space name) ``RECOMMENDER_EXPLAIN_MIN_SIMILARITY`` applies.

A co-occurrence reason ("Shoppers who viewed X also viewed this") needs at least
``RECOMMENDER_EXPLAIN_MIN_COOCCURRENCE`` shoppers behind the pair, and its verbs say what
every one of them did (``cooccurrence_proofs``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from django.conf import settings

from recommender import behaviour, dbroute
from recommender.conf import conf
from recommender.models import Behaviour, EncoderSpace, ItemCooccurrence
from recommender.serving import profiles
from recommender.serving.ranking import FEATURES, Candidate, current_scorer

# An item "drops" without its anchor when it leaves the top k or falls more than this many
# positions: what explanation fidelity measures, and what a named anchor must cause.
MAX_SHIFT = 2

logger = logging.getLogger(__name__)

# Behaviours that read alike in a reason ("viewed"): a click is a view.
_SAME_AS = {"click": "view"}


def explain_dir() -> Path:
    return Path(settings.RECSITE_DATA_DIR) / "models" / "explain"


def threshold_path(space: EncoderSpace) -> Path:
    return explain_dir() / f"{space.name}.json"


# path → (mtime, calibration): each process rereads a file only when it changes.
_cache: dict[str, tuple[float, dict]] = {}


def calibration(space: EncoderSpace | None) -> dict | None:
    """The stored calibration of ``space`` (``None``: none, unreadable or stale)."""
    if space is None:
        return None
    path = threshold_path(space)
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    cached = _cache.get(str(path))
    if cached is not None and cached[0] == mtime:
        data = cached[1]
    else:
        try:
            data = json.loads(path.read_text())
            float(data["threshold"])
        except (OSError, ValueError, KeyError, TypeError):
            logger.warning("ignoring unreadable explanation calibration %s", path)
            return None
        _cache[str(path)] = (mtime, data)
    if data.get("plugin") != space.plugin or data.get("dim") != space.dim:
        return None  # written for another encoder under this name
    return data


def min_similarity(space: EncoderSpace | None) -> float:
    """The cosine to an anchor above which a similarity reason may name it."""
    data = calibration(space)
    if data is None:
        return float(conf.EXPLAIN_MIN_SIMILARITY)
    return float(data["threshold"])


def min_cooccurrence() -> int:
    """The fewest shoppers behind a co-occurrence for its reason to name the anchor."""
    return int(conf.EXPLAIN_MIN_COOCCURRENCE)


@dataclass(frozen=True)
class CooccurrenceProof:
    """A co-occurrence pair as a reason tells it: the shoppers behind it (the stored
    count), and the behaviour every shopper who engaged with both items showed on the
    anchor and on the item (``"mixed"``: no one behaviour common to all of them)."""

    count: int
    anchor_kind: str
    item_kind: str


def _common_kind(per_user: list[set[str]]) -> str:
    """The strongest behaviour every user showed, or "mixed" when there is none."""
    if not per_user:
        return "mixed"
    common = set.intersection(*per_user)
    for kind in reversed(behaviour.STRENGTH):
        if kind in common:
            return kind
    return "mixed"


# Proofs read in the last RECOMMENDER_EXPLAIN_CACHE_SECONDS, per process: (anchor, item,
# min_count) → (when read, the proof or None). A popular pair is explained on many lists
# a second, and its proof (a stored count refreshed by a periodic task, and what its
# shoppers did) changes slowly; reading it costs a join over both items' events.
_proofs: dict[tuple[int, int, int], tuple[float, CooccurrenceProof | None]] = {}
_proofs_lock = threading.Lock()
PROOF_CACHE_SIZE = 100_000


def cooccurrence_proofs(
    pairs: list[tuple[int, int]], as_of: datetime | None = None, *, min_count: int = 0
) -> dict[tuple[int, int], CooccurrenceProof]:
    """For (anchor, item) pairs: the stored co-occurrence count and what the shoppers who
    engaged with both did to each (events before ``as_of``, engagements as
    ``serving.cooccurrence`` counts them). Pairs without a stored count are left out.
    Pairs with fewer than ``min_count`` shoppers are left out too (no behaviour rows read
    for them). One query for all pairs not read in the last
    ``RECOMMENDER_EXPLAIN_CACHE_SECONDS`` (``as_of``, a replay of the past, reads all)."""
    pairs = list(dict.fromkeys(pairs))
    if not pairs:
        return {}
    keep = float(conf.EXPLAIN_CACHE_SECONDS) if as_of is None else 0.0
    if keep <= 0:
        return _read_proofs(pairs, as_of, min_count)
    now = time.monotonic()
    found: dict[tuple[int, int], CooccurrenceProof] = {}
    missing = []
    with _proofs_lock:
        for pair in pairs:
            cached = _proofs.get((*pair, min_count))
            if cached is None or now - cached[0] > keep:
                missing.append(pair)
            elif cached[1] is not None:
                found[pair] = cached[1]
    if missing:
        read = _read_proofs(missing, as_of, min_count)
        found.update(read)
        with _proofs_lock:
            if len(_proofs) + len(missing) > PROOF_CACHE_SIZE:
                _proofs.clear()
            for pair in missing:
                _proofs[(*pair, min_count)] = (now, read.get(pair))
    return found


def _read_proofs(pairs, as_of, min_count) -> dict[tuple[int, int], CooccurrenceProof]:
    """``cooccurrence_proofs``' read, for every pair: one statement that returns the pairs
    whose stored count qualifies, then each engaged (item, shopper) of those pairs' items
    with the kinds of their events; the shoppers behind a pair (those who engaged with
    both items) are matched here.

    Joining every anchor event to every item event in SQL cost a plan of a few
    milliseconds and a join over all the pairs' items, before the counts dropped most
    pairs; now only the qualifying pairs' items are read, once each."""
    sql = f"""
        WITH q AS MATERIALIZED (
            SELECT c.item_id AS anchor, c.other_id AS item, c.count
            FROM unnest(%(anchors)s::bigint[], %(items)s::bigint[]) AS p(anchor, item)
            JOIN {ItemCooccurrence._meta.db_table} c
              ON c.item_id = p.anchor AND c.other_id = p.item AND c.count >= %(min_count)s
        )
        SELECT anchor, item, count, NULL::bigint, NULL::text[] FROM q
        UNION ALL
        SELECT b.item_id, NULL, NULL, b.user_id, array_agg(DISTINCT b.kind)
        FROM {Behaviour._meta.db_table} b
        WHERE b.item_id IN (SELECT anchor FROM q UNION SELECT item FROM q)
          AND b.kind = ANY(%(kinds)s)
          AND (%(as_of)s::timestamptz IS NULL OR b.occurred_at < %(as_of)s::timestamptz)
          AND (b.kind <> 'rating' OR b.value IS NULL OR b.value >= %(min_rating)s)
        GROUP BY b.item_id, b.user_id
    """
    params = {
        "anchors": [a for a, _ in pairs],
        "items": [i for _, i in pairs],
        "kinds": list(behaviour.ENGAGED),
        "as_of": as_of,
        "min_rating": behaviour.positive_rating(),
        "min_count": min_count,
    }
    counts: dict[tuple[int, int], int] = {}
    engaged: dict[int, dict[int, set[str]]] = {}  # item → shopper → kinds
    with dbroute.read_connection().cursor() as cursor:
        cursor.execute(sql, params)
        for first, item, count, user_id, kinds in cursor.fetchall():
            if user_id is None:
                counts[(first, item)] = int(count)
            else:
                engaged.setdefault(first, {})[user_id] = {_SAME_AS.get(k, k) for k in kinds}
    proofs = {}
    for (anchor, item), count in counts.items():
        on_anchor, on_item = engaged.get(anchor, {}), engaged.get(item, {})
        both = on_anchor.keys() & on_item.keys()
        if both:
            proofs[(anchor, item)] = CooccurrenceProof(
                count,
                _common_kind([on_anchor[user] for user in both]),
                _common_kind([on_item[user] for user in both]),
            )
    return proofs


def cooccurrence_shares(
    parts: dict[int, dict[int, float]], anchors: set[int]
) -> dict[tuple[int, int], float]:
    """(anchor, item) → the anchor's share of the item's co-occurrence feature, from the
    terms ``cooccurrence_candidates`` summed it from (``parts``: item → seed → score ×
    seed weight)."""
    shares: dict[tuple[int, int], float] = {}
    for item, terms in parts.items():
        total = sum(terms.values())
        if total <= 0:
            continue
        for seed, value in terms.items():
            if seed in anchors:
                shares[(seed, item)] = value / total
    return shares


def _unit(vector: np.ndarray | None) -> np.ndarray | None:
    if vector is None:
        return None
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 1e-9 else None


def faithful_pairs(
    anchors: set[int],
    ranked: list[Candidate],
    k: int,
    *,
    scorer,
    vectors: dict[int, np.ndarray],
    profile: profiles.ProfileState | None,
    anchor_weights: dict[int, float],
    shares: dict[tuple[int, int], float],
    max_shift: int = MAX_SHIFT,
) -> set[tuple[int, int]]:
    """The (anchor, item) pairs where the item would drop without the anchor: estimated
    by re-scoring the head of the ranking (``ranked``, best first) with the features the
    request would have without the anchor: the similarity to the profile less the anchor's
    events (``anchor_weights``: their decayed weight in ``profile``), and the
    co-occurrence less the anchor's share. A drop is what explanation fidelity counts:
    out of the top ``k``, or more than ``max_shift`` positions down.

    Every anchor's re-scoring is one batch: a feature matrix per anchor, their profiles
    moved in one product, one call of the (row-wise) scorer (a loop per anchor cost a
    list 2 ms on the demo shop)."""
    faithful: set[tuple[int, int]] = set()
    if not ranked or not anchors:
        return faithful
    order_of_anchors = sorted(anchors)
    ids = [c.item_id for c in ranked]
    n, count = len(ids), len(order_of_anchors)
    matrix = np.array(
        [[c.features.get(name, 0.0) for name in FEATURES] for c in ranked], dtype=np.float32
    )
    similarity, cooccurrence = FEATURES.index("similarity"), FEATURES.index("cooccurrence")
    adjusted = np.repeat(matrix[None, :, :], count, axis=0)  # (anchor, candidate, feature)
    base = _unit(profile.vector()) if profile is not None else None
    units = [_unit(vectors.get(i)) for i in ids]
    has_unit = np.array([u is not None for u in units])
    moved = [at for at, anchor in enumerate(order_of_anchors) if anchor in vectors]
    if base is not None and has_unit.any() and profile.item_sum is not None and moved:
        dim = base.shape[0]
        unit_matrix = np.stack(
            [u if u is not None else np.zeros(dim, np.float32) for u in units]
        ).astype(np.float64)
        base_dots = unit_matrix @ base.astype(np.float64)
        weights = np.array(
            [anchor_weights.get(order_of_anchors[at], 0.0) for at in moved], dtype=np.float32
        )
        sums = profile.item_sum[None, :] - weights[:, None] * np.stack(
            [vectors[order_of_anchors[at]] for at in moved]
        ).astype(np.float32)
        shifted, valid = _profile_vectors(profile, sums)
        change = unit_matrix @ shifted.astype(np.float64).T - base_dots[:, None]  # (n, moved)
        for column, at in enumerate(moved):
            if valid[column]:
                adjusted[at, has_unit, similarity] += change[has_unit, column].astype(np.float32)
    position_in = {anchor: at for at, anchor in enumerate(order_of_anchors)}
    row_of = {item_id: row for row, item_id in enumerate(ids)}
    for (anchor, item_id), share in shares.items():
        at, row = position_in.get(anchor), row_of.get(item_id)
        if at is not None and row is not None and "cooccurrence" in ranked[row].features:
            adjusted[at, row, cooccurrence] *= 1.0 - share
    scorer = scorer or current_scorer()
    scores = np.asarray(scorer.score(adjusted.reshape(count * n, -1)), dtype=np.float64)
    order = np.argsort(-scores.reshape(count, n), axis=1, kind="stable")
    position_of = np.empty((count, n), dtype=np.int64)
    np.put_along_axis(position_of, order, np.arange(n)[None, :].repeat(count, axis=0), axis=1)
    head = min(k, n)
    new_positions = position_of[:, :head]
    dropped = (new_positions >= k) | (new_positions - np.arange(head)[None, :] > max_shift)
    for at, position in zip(*np.nonzero(dropped), strict=True):
        faithful.add((order_of_anchors[int(at)], ids[int(position)]))
    return faithful


def _profile_vectors(
    profile: profiles.ProfileState, item_sums: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``profile.vector()`` with each row of ``item_sums`` in place of its item sum, at
    once, then made unit as ``_unit`` makes it: (vectors, whether each exists)."""
    text_weight = float(conf.PROFILE_TEXT_WEIGHT)
    norms = np.linalg.norm(item_sums, axis=1)
    has_items = norms > 1e-9
    items = item_sums / np.where(has_items, norms, 1.0)[:, None]
    text = None
    if profile.text_sum is not None:
        text_norm = float(np.linalg.norm(profile.text_sum))
        if text_norm > 1e-9:
            text = profile.text_sum / text_norm
    if text is None:
        vectors, valid = items.astype(np.float32), has_items
    else:
        blended = np.where(
            has_items[:, None], items * (1.0 - text_weight) + text * text_weight, text
        )
        blended_norms = np.linalg.norm(blended, axis=1)
        valid = blended_norms > 1e-9
        vectors = (blended / np.where(valid, blended_norms, 1.0)[:, None]).astype(np.float32)
    # ``_unit``: made unit once more, as the loop did per anchor.
    again = np.linalg.norm(vectors, axis=1)
    valid = valid & (again > 1e-9)
    return vectors / np.where(valid, again, 1.0)[:, None], valid
