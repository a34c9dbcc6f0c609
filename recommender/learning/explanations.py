"""Explanations held to account: the similarity a reason needs before it names an item
(calibrated per encoder space), and how faithful the reasons served are.

``calibrate`` measures, in one encoder space, the cosine between random pairs of items
(pairs that have nothing to do with each other, as far as anyone knows) and between each
engaged item and the item the same user engaged with next (pairs that do). The threshold
is a high quantile of the random pairs' similarities (0.95 by default): a reason naming
an anchor for an unrelated item passes it 5 % of the time. ``save_calibration`` writes it
where serving reads it (``serving.evidence``).

``fidelity`` re-ranks each sampled user's list without each anchor a reason names (the
request's ``forget``: the anchor's events left out of the profile, the history, the
co-occurrence seeds and the category affinity) and counts the reason as faithful when the
item *drops*: it leaves the top ``k``, or falls more than ``max_shift`` positions. The
share that drops is reported per reason type with a 95 % Wilson interval.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from recommender import behaviour
from recommender.models import Behaviour, EncoderSpace, EndUser, Item, ItemVector
from recommender.serving import evidence
from recommender.serving.pipeline import RecommendationRequest, recommend
from recommender.spaces import vector_io

# --- calibration ----------------------------------------------------------------------

QUANTILE = 0.95
MAX_ITEMS = 20_000
RANDOM_PAIRS = 20_000
NEXT_PAIRS = 20_000


@dataclass
class Calibration:
    """A space's threshold and the two distributions it was read from."""

    space: str
    plugin: str
    dim: int
    threshold: float
    quantile: float
    random_pairs: int
    random_median: float
    next_pairs: int
    next_median: float
    next_above: float  # the share of next-engaged pairs at or above the threshold
    calibrated_at: str = ""

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _unit_rows(space: EncoderSpace, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Unit vectors of up to ``MAX_ITEMS`` items of the space (a random sample beyond)."""
    ids = list(ItemVector.objects.filter(space=space).values_list("item_id", flat=True))
    if len(ids) > MAX_ITEMS:
        ids = [int(i) for i in rng.choice(ids, MAX_ITEMS, replace=False)]
    rows = vector_io.fetch(
        f"SELECT item_id, embedding FROM {ItemVector._meta.db_table} "
        "WHERE space_id = %s AND item_id = ANY(%s)",
        [space.pk, ids],
    )
    vectors = {}
    for item_id, raw in rows:
        vector = vector_io.decode(raw).astype(np.float32)
        norm = float(np.linalg.norm(vector))
        if norm > 1e-9:
            vectors[item_id] = vector / norm
    return vectors


def _next_pairs(vectors: dict[int, np.ndarray], limit: int) -> list[tuple[int, int]]:
    """(item, the next different item the same user engaged with), over the log."""
    events = (
        Behaviour.objects.filter(behaviour.positive_q())
        .order_by("user_id", "occurred_at", "id")
        .values_list("user_id", "item_id")
    )
    pairs: list[tuple[int, int]] = []
    last_user, last_item = None, None
    for user_id, item_id in events.iterator(chunk_size=5000):
        if user_id == last_user and item_id != last_item and last_item in vectors:
            if item_id in vectors:
                pairs.append((last_item, item_id))
                if len(pairs) >= limit:
                    break
        last_user, last_item = user_id, item_id
    return pairs


def calibrate(space: EncoderSpace, *, quantile: float = QUANTILE, seed: int = 0) -> Calibration:
    """The threshold a similarity reason must reach in ``space`` (see the module doc).

    Raises ``ValueError`` when the space has fewer than two items with vectors."""
    if not 0.5 <= quantile < 1.0:
        raise ValueError("quantile must be in [0.5, 1)")
    rng = np.random.default_rng(seed)
    vectors = _unit_rows(space, rng)
    if len(vectors) < 2:
        raise ValueError(f"space {space.name!r} has fewer than two item vectors")
    ids = np.array(sorted(vectors))
    matrix = np.stack([vectors[i] for i in ids])
    a = rng.integers(0, len(ids), RANDOM_PAIRS)
    b = rng.integers(0, len(ids), RANDOM_PAIRS)
    keep = a != b
    random_sims = np.einsum("ij,ij->i", matrix[a[keep]], matrix[b[keep]])
    threshold = float(np.quantile(random_sims, quantile))
    pairs = _next_pairs(vectors, NEXT_PAIRS)
    next_sims = np.array([float(vectors[x] @ vectors[y]) for x, y in pairs], dtype=np.float32)
    return Calibration(
        space=space.name,
        plugin=space.plugin,
        dim=space.dim,
        threshold=round(threshold, 4),
        quantile=quantile,
        random_pairs=int(len(random_sims)),
        random_median=round(float(np.median(random_sims)), 4),
        next_pairs=len(pairs),
        next_median=round(float(np.median(next_sims)), 4) if len(pairs) else float("nan"),
        next_above=round(float((next_sims >= threshold).mean()), 4) if len(pairs) else 0.0,
        calibrated_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def save_calibration(calibration: Calibration) -> Path:
    """Write it where serving reads it (atomically: a reader never sees half a file)."""
    path = evidence.explain_dir() / f"{calibration.space}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(calibration.to_json(), indent=2))
    temporary.replace(path)
    return path


# --- fidelity -------------------------------------------------------------------------

K = 10
MAX_SHIFT = evidence.MAX_SHIFT  # falling 3 or more positions counts as a drop
DEPTH = 50  # how deep the lists are compared


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % for ``z=1.96``); (0, 1) for n=0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denominator = 1 + z * z / n
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


@dataclass(frozen=True)
class FidelityCase:
    """One reason that names an anchor, and where its item went without that anchor."""

    user: str
    item: str
    anchor: str
    reason_type: str
    position: int  # 0-based, in the list as served
    new_position: int | None  # None: not in the top ``depth`` any more
    dropped: bool


@dataclass
class FidelityReport:
    k: int
    max_shift: int
    users: int = 0
    items: int = 0  # listed items, with or without an anchor-naming reason
    cases: list[FidelityCase] = field(default_factory=list)

    def by_type(self) -> dict[str, dict[str, float]]:
        """Reason type (and "all") → n, dropped, share and its 95 % Wilson interval."""
        groups: dict[str, list[FidelityCase]] = {}
        for case in self.cases:
            groups.setdefault(case.reason_type, []).append(case)
        groups["all"] = list(self.cases)
        table = {}
        for name, cases in groups.items():
            n, dropped = len(cases), sum(c.dropped for c in cases)
            low, high = wilson(dropped, n)
            table[name] = {
                "n": n,
                "dropped": dropped,
                "share": dropped / n if n else float("nan"),
                "low": low,
                "high": high,
            }
        return table


def dropped(position: int, new_position: int | None, k: int, max_shift: int) -> bool:
    """Whether an item at ``position`` (0-based) dropped: out of the top ``k``, or more
    than ``max_shift`` positions further down."""
    return new_position is None or new_position >= k or new_position - position > max_shift


def sample_users(n: int) -> list[EndUser]:
    """The first ``n`` users (by id) with at least one engagement."""
    ids = (
        Behaviour.objects.filter(behaviour.positive_q())
        .order_by("user_id")
        .values_list("user_id", flat=True)
        .distinct()[:n]
    )
    return list(EndUser.objects.filter(pk__in=list(ids)).order_by("pk"))


def ranked_without(
    user: EndUser, anchor: int, *, depth: int = DEPTH, lang: str = "zh"
) -> list[int]:
    """The user's list (item ids, ``depth`` deep) as if they had never touched ``anchor``."""
    request = RecommendationRequest(
        user=user, k=depth, lang=lang, explain=False, forget=frozenset({anchor})
    )
    return [r.item.pk for r in recommend(request)]


def fidelity(
    users: Iterable[EndUser],
    *,
    k: int = K,
    lang: str = "zh",
    max_shift: int = MAX_SHIFT,
    depth: int = DEPTH,
    progress: Callable[[int], object] | None = None,
) -> FidelityReport:
    """How often the item a reason explains by an anchor drops without that anchor.

    Both lists (as served and without the anchor) are ranked ``depth`` deep, so that the
    candidate pool is the same size; the served list is their top ``k``."""
    report = FidelityReport(k=k, max_shift=max_shift)
    depth = max(depth, k)
    for user in users:
        report.users += 1
        served = recommend(RecommendationRequest(user=user, k=depth, lang=lang))[:k]
        report.items += len(served)
        anchors = {
            r.reason.evidence.anchor
            for r in served
            if r.reason is not None and r.reason.evidence.anchor is not None
        }
        pks = dict(Item.objects.filter(external_id__in=anchors).values_list("external_id", "pk"))
        without: dict[str, list[int]] = {}
        for position, result in enumerate(served):
            reason = result.reason
            if reason is None or reason.evidence.anchor not in pks:
                continue
            anchor = reason.evidence.anchor
            if anchor not in without:
                without[anchor] = ranked_without(user, pks[anchor], depth=depth, lang=lang)
            ranked = without[anchor]
            new_position = ranked.index(result.item.pk) if result.item.pk in ranked else None
            report.cases.append(
                FidelityCase(
                    user=user.external_id,
                    item=result.item.external_id,
                    anchor=anchor,
                    reason_type=reason.type,
                    position=position,
                    new_position=new_position,
                    dropped=dropped(position, new_position, k, max_shift),
                )
            )
        if progress is not None:
            progress(1)
    return report


def format_report(report: FidelityReport) -> str:
    """The per-type table as Markdown."""
    lines = [
        f"{report.users} users, {report.items} listed items, {len(report.cases)} reasons "
        f"naming an anchor (k={report.k}; a drop: out of the top {report.k} or more than "
        f"{report.max_shift} positions down)",
        "",
        "| reason type | reasons | dropped | share | 95 % interval |",
        "|---|---:|---:|---:|---|",
    ]
    for name, row in sorted(report.by_type().items(), key=lambda kv: (kv[0] == "all", kv[0])):
        share = "–" if not row["n"] else f"{row['share']:.2f}"
        lines.append(
            f"| {name} | {row['n']} | {row['dropped']} | {share} | "
            f"{row['low']:.2f}–{row['high']:.2f} |"
        )
    return "\n".join(lines)
