"""The fast paths of ``benchmarks/serving.py``'s data build: profiles computed in bulk with
numpy, written with one binary COPY, and checked against ``profiles.recompute``.

``profiles.recompute`` replays a user's events one by one (``profiles.apply``: decay the
sums to the event's time, add the weighted item vector). Because the decay is exponential,
the replay has a closed form: the item sum is Σ weight_e · 0.5^((ref - t_e) / half-life) ·
vector_e with ref the user's latest event, so a million events are one weighted segment sum
instead of a million Python steps. ``check_profiles`` compares a sample of the bulk profiles
with the replay, so a change to ``profiles.py`` that this copy misses fails the build.

The synthetic events carry no text: the text sum (searches, reviews) is not computed here,
and ``bulk_profiles`` refuses events that would need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)


def microseconds(at: datetime) -> int:
    """``at`` as whole microseconds since the epoch (timestamptz's own resolution)."""
    return (at - EPOCH) // ONE_MICROSECOND


def from_microseconds(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(value))


@dataclass
class EventArrays:
    """Events as columns, in insertion order (the log's tie-break): the user's position in
    the user list, the item's row in the vector matrix, the kind, the value (NaN for none)
    and the time in microseconds since the epoch."""

    user: np.ndarray
    item: np.ndarray
    kind: np.ndarray
    value: np.ndarray
    at_us: np.ndarray


@dataclass
class BulkProfiles:
    """Per user (same positions as the user list): the decayed item sum (None rows where the
    user has no weighted event), the reference time, the rating sums and the event count;
    ``present`` marks users with at least one counted event (the others get no row)."""

    item_sum: np.ndarray  # float32 (users, dim)
    has_items: np.ndarray  # bool: item_sum is not None
    ref_us: np.ndarray  # int64
    rating_sum: np.ndarray  # float64
    rating_count: np.ndarray  # int64
    events: np.ndarray  # int64
    present: np.ndarray  # bool


def bulk_profiles(
    events: EventArrays, vectors: np.ndarray, n_users: int, *, chunk: int = 50_000
) -> BulkProfiles:
    """Every user's profile from ``events`` and the item ``vectors``, in the arithmetic of
    ``profiles.recompute`` (weights from RECOMMENDER_BEHAVIOUR_WEIGHTS, ratings against the
    user's running mean, decay relative to the latest event; impressions and events before
    the retention start do not count)."""
    from recommender import behaviour
    from recommender.conf import conf
    from recommender.serving import profiles

    keep = ~np.isin(events.kind, list(behaviour.SIGNALLESS))
    if (start := behaviour.retention_start()) is not None:
        keep &= events.at_us >= microseconds(start)
    if np.isin(events.kind[keep], list(profiles.TEXT_KINDS)).any():
        raise ValueError("bulk_profiles does not compute text sums; use profiles.recompute")
    # The log's replay order: by user, then time, then insertion (lexsort is stable).
    kept = np.flatnonzero(keep)
    order = kept[np.lexsort((events.at_us[kept], events.user[kept]))]
    user, item = events.user[order], events.item[order]
    kind, value, at_us = events.kind[order], events.value[order], events.at_us[order]

    users, starts, counts = np.unique(user, return_index=True, return_counts=True)
    group = np.repeat(np.arange(len(users)), counts)
    ref_us = at_us[starts + counts - 1]  # the latest event of each user

    weight = np.zeros(len(order), dtype=np.float64)
    for name in np.unique(kind):
        weight[kind == name] = behaviour.weight(str(name))
    # A rating counts against the user's mean of the ratings before it (shrunk to a prior).
    rated = (kind == "rating") & ~np.isnan(value)
    rated_value = np.where(rated, value, 0.0)
    sum_before = _before(rated_value, starts, group)
    count_before = _before(rated.astype(np.float64), starts, group)
    prior = float(conf.RATING_PRIOR)
    mean_before = (sum_before + 2 * prior) / (count_before + 2)
    weight[rated] += (
        float(conf.RATING_WEIGHT) * (value[rated] - mean_before[rated]) / float(conf.RATING_SCALE)
    )
    age_s = (ref_us[group] - at_us) / 1e6
    coefficient = weight * np.power(0.5, np.maximum(age_s, 0.0) / profiles.half_life_seconds())

    # Σ coefficient · vector per user, a chunk of events at a time (float64 accumulation).
    sums = np.zeros((len(users), vectors.shape[1]), dtype=np.float64)
    for lo in range(0, len(order), chunk):
        hi = min(lo + chunk, len(order))
        weighted = vectors[item[lo:hi]].astype(np.float64) * coefficient[lo:hi, None]
        bounds = np.flatnonzero(np.r_[True, group[lo + 1 : hi] != group[lo : hi - 1]])
        sums[group[lo:hi][bounds]] += np.add.reduceat(weighted, bounds, axis=0)

    out = BulkProfiles(
        item_sum=np.zeros((n_users, vectors.shape[1]), dtype=np.float32),
        has_items=np.zeros(n_users, dtype=bool),
        ref_us=np.zeros(n_users, dtype=np.int64),
        rating_sum=np.zeros(n_users, dtype=np.float64),
        rating_count=np.zeros(n_users, dtype=np.int64),
        events=np.zeros(n_users, dtype=np.int64),
        present=np.zeros(n_users, dtype=bool),
    )
    out.item_sum[users] = sums.astype(np.float32)
    # ``apply`` adds nothing for a zero weight: a user with only those keeps no item sum.
    out.has_items[users] = np.add.reduceat(weight != 0, starts) > 0
    out.ref_us[users] = ref_us
    out.rating_sum[users] = np.add.reduceat(rated_value, starts)
    out.rating_count[users] = np.add.reduceat(rated.astype(np.int64), starts)
    out.events[users] = counts
    out.present[users] = True
    return out


def _before(values: np.ndarray, starts: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Per element, the sum of the earlier elements of its group (groups are contiguous)."""
    running = np.cumsum(values) - values
    return running - running[starts][group]


def copy_profiles(conn, table: str, space_id: int, user_pks: np.ndarray, bulk: BulkProfiles):
    """Write the profiles of the present users with one binary COPY; rows written."""
    now = datetime.now(UTC)
    written = 0
    with conn.cursor() as cursor:
        with cursor.copy(
            f"COPY {table} (user_id, space_id, item_sum, text_sum, ref_time, rating_sum, "
            "rating_count, events, updated_at) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(
                ["int8", "int8", "vector", "vector", "timestamptz", "float8", "int4", "int4",
                 "timestamptz"]
            )  # fmt: skip
            for i in np.flatnonzero(bulk.present).tolist():
                copy.write_row(
                    (
                        int(user_pks[i]),
                        space_id,
                        bulk.item_sum[i] if bulk.has_items[i] else None,
                        None,
                        from_microseconds(bulk.ref_us[i]),
                        float(bulk.rating_sum[i]),
                        int(bulk.rating_count[i]),
                        int(bulk.events[i]),
                        now,
                    )
                )
                written += 1
    return written


def check_profiles(space, user_pks, rng: np.random.Generator, n: int = 50) -> int:
    """Compare ``n`` random users' stored (bulk) profiles with ``profiles.recompute`` and
    raise ``RuntimeError`` on the first difference beyond float tolerance; users checked."""
    from recommender.serving import profiles

    picked = rng.choice(np.asarray(user_pks), size=min(n, len(user_pks)), replace=False)
    for user_pk in picked.tolist():
        stored = profiles.load(user_pk, space)
        exact = profiles.recompute(user_pk, space)
        problems = []
        if (stored.ref_time, stored.events) != (exact.ref_time, exact.events):
            problems.append(
                f"ref_time/events {stored.ref_time}/{stored.events} != "
                f"{exact.ref_time}/{exact.events}"
            )
        if stored.rating_count != exact.rating_count or not np.isclose(
            stored.rating_sum, exact.rating_sum
        ):
            problems.append("rating sums differ")
        for name in ("item_sum", "text_sum"):
            a, b = getattr(stored, name), getattr(exact, name)
            if (a is None) != (b is None):
                problems.append(f"{name}: {'None' if a is None else 'set'} vs recompute's")
            elif a is not None:
                scale = max(float(np.linalg.norm(b)), 1e-9)
                error = float(np.max(np.abs(a - b))) / scale
                if error > 1e-5:
                    problems.append(f"{name} differs by {error:.2e} of its norm")
        if problems:
            raise RuntimeError(
                f"bulk profile of user {user_pk} differs from profiles.recompute: "
                + "; ".join(problems)
            )
    return len(picked)
