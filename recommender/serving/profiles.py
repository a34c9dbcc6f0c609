"""User interest vectors: decayed, behaviour-weighted sums of item vectors and text vectors.

A profile keeps two sums per space, both decayed exponentially to a reference time:
``item_sum`` (weights per behaviour kind from settings; dislikes negative; ratings centred
on the user's own mean) and ``text_sum`` (vectors of the user's searches and reviews).
Because the decay is exponential, adding one event is exact and O(dim): decay the sums
to the event's time and add. ``recompute`` rebuilds a profile from the behaviour log (the
periodic task, and "as of" profiles for offline evaluation).

Every writer of a stored profile first takes the user's lock (``lock_users``), before it
reads the log or the stored sums: otherwise two writers can each read, then each write,
and one event's contribution silently disappears.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from recommender import dbroute
from recommender.behaviour import SIGNALLESS, retention_start
from recommender.behaviour import weight as behaviour_weight
from recommender.conf import conf
from recommender.models import Behaviour, EncoderSpace, EndUser, ItemVector, UserProfile
from recommender.spaces import embedding, vector_io

TEXT_KINDS = ("search", "review")
SECONDS_PER_DAY = 86400.0


def half_life_seconds() -> float:
    return float(conf.PROFILE_HALF_LIFE_DAYS) * SECONDS_PER_DAY


def decay_factor(seconds: float) -> float:
    """How much a contribution ``seconds`` old still counts (0.5 after one half-life)."""
    return math.pow(0.5, max(seconds, 0.0) / half_life_seconds())


@dataclass
class ProfileState:
    """The sums behind a profile, decayed to ``ref_time``."""

    item_sum: np.ndarray | None
    text_sum: np.ndarray | None
    ref_time: datetime | None
    rating_sum: float = 0.0
    rating_count: int = 0
    events: int = 0

    def rating_mean(self) -> float:
        # Shrunk towards a prior so the first rating of a user is not "exactly average".
        prior = float(conf.RATING_PRIOR)
        return (self.rating_sum + 2 * prior) / (self.rating_count + 2)

    def vector(self) -> np.ndarray | None:
        """The unit-length profile vector, or None for a user with no usable history."""
        text_weight = float(conf.PROFILE_TEXT_WEIGHT)
        parts = []
        for total, weight in ((self.item_sum, 1.0 - text_weight), (self.text_sum, text_weight)):
            if total is None:
                continue
            norm = float(np.linalg.norm(total))
            if norm > 1e-9:
                parts.append((total / norm, weight))
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0][0].astype(np.float32)
        blended = sum(vector * weight for vector, weight in parts)
        norm = float(np.linalg.norm(blended))
        return (blended / norm).astype(np.float32) if norm > 1e-9 else None


def event_weight(kind: str, value: float | None, state: ProfileState) -> float:
    """How much one event pulls the profile towards (or, if negative, away from) its item."""
    weight = behaviour_weight(kind)
    if kind == "rating" and value is not None:
        scale = float(conf.RATING_SCALE)
        weight += float(conf.RATING_WEIGHT) * (value - state.rating_mean()) / scale
    return weight


def _add(total: np.ndarray | None, vector: np.ndarray, weight: float) -> np.ndarray:
    contribution = vector.astype(np.float32) * np.float32(weight)
    return contribution if total is None else total + contribution


def apply(
    state: ProfileState,
    *,
    kind: str,
    occurred_at: datetime,
    value: float | None,
    item_vector: np.ndarray | None,
    text_vector: np.ndarray | None,
) -> ProfileState:
    """Fold one event into ``state`` (in place, O(dim)); events may arrive out of order."""
    if state.ref_time is None:
        state.ref_time = occurred_at
    if occurred_at >= state.ref_time:
        keep = decay_factor((occurred_at - state.ref_time).total_seconds())
        if state.item_sum is not None:
            state.item_sum = state.item_sum * np.float32(keep)
        if state.text_sum is not None:
            state.text_sum = state.text_sum * np.float32(keep)
        state.ref_time = occurred_at
        age_factor = 1.0
    else:  # a late event: decay the newcomer instead of the sums
        age_factor = decay_factor((state.ref_time - occurred_at).total_seconds())
    if item_vector is not None:
        weight = event_weight(kind, value, state) * age_factor
        if weight:
            state.item_sum = _add(state.item_sum, item_vector, weight)
    if text_vector is not None and kind in TEXT_KINDS:
        state.text_sum = _add(state.text_sum, text_vector, age_factor)
    if kind == "rating" and value is not None:
        state.rating_sum += value
        state.rating_count += 1
    state.events += 1
    return state


def item_vectors(space: EncoderSpace, item_ids) -> dict[int, np.ndarray]:
    """Vectors of ``item_ids`` in ``space`` (binary transfer: see ``vector_io``)."""
    ids = list(item_ids)
    if not ids:
        return {}
    rows = vector_io.fetch(
        f"SELECT item_id, embedding FROM {ItemVector._meta.db_table} "
        "WHERE space_id = %s AND item_id = ANY(%s)",
        [space.pk, ids],
    )
    return {item_id: vector_io.decode(vector) for item_id, vector in rows}


def _log(user_ids: Sequence[int], as_of: datetime | None) -> list[tuple]:
    """The behaviour log of several users in one query, per user in replay order."""
    sql = (
        "SELECT user_id, kind, item_id, value, text, occurred_at "
        f"FROM {Behaviour._meta.db_table} WHERE user_id = ANY(%s) AND NOT (kind = ANY(%s))"
    )
    params: list = [list(user_ids), list(SIGNALLESS)]
    if as_of is not None:
        sql += " AND occurred_at < %s"
        params.append(as_of)
    if (start := retention_start(as_of)) is not None:
        sql += " AND occurred_at >= %s"  # older events no longer count
        params.append(start)
    with dbroute.read_connection().cursor() as cursor:
        cursor.execute(sql + " ORDER BY user_id, occurred_at, id", params)
        return cursor.fetchall()


def _text_vectors(space: EncoderSpace, rows: Iterable[tuple[str, str]]) -> dict[str, np.ndarray]:
    """Vectors of the texts of ``(kind, text)`` pairs that a profile reads (searches,
    reviews), each distinct text encoded at most once (and cached across calls)."""
    texts = list(dict.fromkeys(text for kind, text in rows if kind in TEXT_KINDS and text))
    return dict(zip(texts, embedding.encode_cached(space, texts), strict=True))


def recompute_many(
    user_ids: Iterable[int], space: EncoderSpace, *, as_of: datetime | None = None
) -> dict[int, ProfileState]:
    """Exact profiles of several users from their behaviour logs (events strictly before
    ``as_of``): one query for the logs, one for the item vectors, one encoding of the texts.
    Users without events get an empty state (``ref_time`` None)."""
    ids = list(dict.fromkeys(int(user_id) for user_id in user_ids))
    states = {user_id: ProfileState(item_sum=None, text_sum=None, ref_time=None) for user_id in ids}
    if not ids:
        return states
    rows = _log(ids, as_of)
    vectors = item_vectors(space, {row[2] for row in rows if row[2] is not None})
    text_vectors = _text_vectors(space, ((row[1], row[4]) for row in rows))
    for user_id, kind, item_id, value, text, occurred_at in rows:
        apply(
            states[user_id],
            kind=kind,
            occurred_at=occurred_at,
            value=value,
            item_vector=vectors.get(item_id),
            text_vector=text_vectors.get(text) if kind in TEXT_KINDS and text else None,
        )
    return states


def recompute(
    user: EndUser | int, space: EncoderSpace, *, as_of: datetime | None = None
) -> ProfileState:
    """The exact profile from the behaviour log (events strictly before ``as_of``)."""
    user_id = user if isinstance(user, int) else user.pk
    return recompute_many([user_id], space, as_of=as_of)[user_id]


# The first key of every per-user profile lock: any constant that no other advisory lock
# of this site uses (encoder spaces use 0x5EC0).
PROFILE_LOCK_NAMESPACE = 0x9F0F


def _lock_key(user_id: int) -> int:
    # The two-key advisory lock takes int4 keys: larger ids wrap around, so two users may
    # share a lock. That only makes one wait for the other, it never loses an update.
    return (int(user_id) + 2**31) % 2**32 - 2**31


def lock_users(user_ids: Iterable[int]) -> None:
    """Serialise profile writers per user until the current transaction ends.

    Takes ``pg_advisory_xact_lock(PROFILE_LOCK_NAMESPACE, user_id)`` for each user, in
    ascending key order, so that writers locking overlapping sets of users cannot deadlock.
    Every path that reads a user's behaviour log or stored profile in order to write the
    profile (one event, a batch, the periodic recompute, the lazy recompute of ``load``,
    forgetting) calls this first. Transaction-scoped locks are released at commit or
    rollback; outside a transaction one would be released at once, so that is an error.
    """
    keys = sorted({_lock_key(user_id) for user_id in user_ids})
    if not keys:
        return
    if not connection.in_atomic_block:
        raise RuntimeError("lock_users() needs a transaction (wrap it in transaction.atomic)")
    with connection.cursor() as cursor:
        if len(keys) == 1:  # the hot path: one event
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [PROFILE_LOCK_NAMESPACE, *keys])
            return
        # unnest() yields the sorted array in order, so the locks are taken in key order,
        # all in one round trip.
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, key) FROM unnest(%s::int4[]) AS key",
            [PROFILE_LOCK_NAMESPACE, keys],
        )


def save(user_id: int, space: EncoderSpace, state: ProfileState) -> None:
    """Store ``state`` as the user's profile (or delete it when the state is empty)."""
    if state.ref_time is None:
        UserProfile.objects.filter(user_id=user_id, space=space).delete()
        return
    UserProfile.objects.update_or_create(
        user_id=user_id,
        space=space,
        defaults=_columns(state),
    )


def _columns(state: ProfileState) -> dict:
    """A profile row's stored fields from ``state``."""
    return {
        "item_sum": state.item_sum,
        "text_sum": state.text_sum,
        "ref_time": state.ref_time,
        "rating_sum": state.rating_sum,
        "rating_count": state.rating_count,
        "events": state.events,
    }


def _state_of(item_sum, text_sum, ref_time, rating_sum, rating_count, events) -> ProfileState:
    """A profile's state from its stored columns (vectors in pgvector's binary form)."""
    return ProfileState(
        item_sum=vector_io.decode(item_sum),
        text_sum=vector_io.decode(text_sum),
        ref_time=ref_time,
        rating_sum=rating_sum,
        rating_count=rating_count,
        events=events,
    )


def _stored(user_id: int, space: EncoderSpace, *, for_update: bool = False, item_id=None):
    """The stored profile's id and state in one binary round trip, or None; with
    ``item_id``, that item's vector in the space too (None when it has none)."""
    rows = vector_io.fetch(
        "SELECT p.id, p.item_sum, p.text_sum, p.ref_time, p.rating_sum, p.rating_count, "
        f"p.events, v.embedding FROM {UserProfile._meta.db_table} p "
        f"LEFT JOIN {ItemVector._meta.db_table} v ON v.space_id = p.space_id AND v.item_id = %s "
        "WHERE p.user_id = %s AND p.space_id = %s" + (" FOR UPDATE OF p" if for_update else ""),
        [item_id, user_id, space.pk],
    )
    if not rows:
        return None
    pk, *stored, vector = rows[0]
    return pk, _state_of(*stored), vector_io.decode(vector)


def load(user: EndUser | int, space: EncoderSpace) -> ProfileState:
    """The stored profile, or one recomputed (and stored) when there is none yet."""
    user_id = user if isinstance(user, int) else user.pk
    stored = _stored(user_id, space)
    if stored is not None:
        return stored[1]
    with transaction.atomic():
        lock_users([user_id])
        stored = _stored(user_id, space)  # stored by another writer while we waited
        if stored is not None:
            return stored[1]
        state = recompute(user_id, space)
        save(user_id, space, state)
    return state


def rebuild(user_ids: Iterable[int], space: EncoderSpace, *, chunk: int = 100) -> int:
    """Recompute and store the profiles of ``user_ids`` exactly (the periodic repair).

    Each chunk of users is one short transaction under their locks, so an event that
    arrives meanwhile is either in the log read here or folded in after this write.
    Returns the number of users processed.
    """
    ids = sorted(set(user_ids))
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        with transaction.atomic():
            lock_users(part)
            save_many(recompute_many(part, space), space)
    return len(ids)


_as_of_memo: dict | None = None


@contextmanager
def memoize_past_profiles():
    """Reuse "as of" profiles within a block (an evaluation asks for each several times)."""
    global _as_of_memo
    _as_of_memo = {}
    try:
        yield
    finally:
        _as_of_memo = None


def state_for(
    user: EndUser | int, space: EncoderSpace, *, as_of: datetime | None = None
) -> ProfileState:
    """The profile as of now (stored) or as of a past time (recomputed, not stored)."""
    if as_of is None:
        return load(user, space)
    if _as_of_memo is None:
        return recompute(user, space, as_of=as_of)
    key = (user if isinstance(user, int) else user.pk, space.pk, as_of)
    if key not in _as_of_memo:
        _as_of_memo[key] = recompute(user, space, as_of=as_of)
    return copy.deepcopy(_as_of_memo[key])


@transaction.atomic(savepoint=False)  # inside the event's transaction: no savepoint
def record(behaviour: Behaviour, space: EncoderSpace) -> ProfileState:
    """Fold a newly stored behaviour into the user's stored profile in ``space``."""
    lock_users([behaviour.user_id])
    stored = _stored(behaviour.user_id, space, for_update=True, item_id=behaviour.item_id)
    if stored is None:
        # First event in this space: the exact recompute already includes it.
        state = recompute(behaviour.user_id, space)
        save(behaviour.user_id, space, state)
        return state
    pk, state, item_vector = stored
    text_vector = None
    if behaviour.kind in TEXT_KINDS and behaviour.text:
        text_vector = embedding.encode_cached(space, [behaviour.text])[0]
    apply(
        state,
        kind=behaviour.kind,
        occurred_at=behaviour.occurred_at,
        value=behaviour.value,
        item_vector=item_vector,
        text_vector=text_vector,
    )
    # One UPDATE by key: the row is locked above, so no get-or-create dance is needed.
    _update(pk, state)
    return state


def _update(pk: int, state: ProfileState) -> None:
    """Write ``state`` to the stored profile ``pk``, its vectors in binary: through the
    ORM each vector was formatted as text float by float, 1 ms of an event's ~9 ms of
    CPU for the two 512-d sums (cProfile of ``benchmarks/request_cost.py --kind event``)."""
    columns = _columns(state)
    for name in ("item_sum", "text_sum"):
        if columns[name] is not None:
            columns[name] = vector_io.Vector(columns[name])
    vector_io.execute(
        f"UPDATE {UserProfile._meta.db_table} SET "
        + ", ".join(f"{name} = %s" for name in columns)
        + ", updated_at = %s WHERE id = %s",
        [*columns.values(), timezone.now(), pk],
    )


def _stored_many(user_ids: Sequence[int], space: EncoderSpace) -> dict[int, ProfileState]:
    """The stored profiles of several users in one binary round trip, rows locked."""
    rows = vector_io.fetch(
        "SELECT user_id, item_sum, text_sum, ref_time, rating_sum, rating_count, events "
        f"FROM {UserProfile._meta.db_table} WHERE space_id = %s AND user_id = ANY(%s) "
        "ORDER BY user_id FOR UPDATE",
        [space.pk, list(user_ids)],
    )
    return {
        user_id: _state_of(item_sum, text_sum, ref_time, rating_sum, rating_count, events)
        for user_id, item_sum, text_sum, ref_time, rating_sum, rating_count, events in rows
    }


@transaction.atomic(savepoint=False)  # inside the batch's transaction: no savepoint
def fold(behaviours: Sequence[Behaviour], space: EncoderSpace) -> int:
    """Fold newly stored behaviours (of many users) into their profiles in ``space``.

    Under the users' locks: stored profiles are read in one query and each user's new
    events applied in time order (O(dim) each, exact like ``record``); users without a
    stored profile get an exact recompute, all in one pass (``recompute_many``), which
    already includes the new events. Everything is written back in bulk. Returns the
    number of users whose profile was updated.
    """
    per_user: dict[int, list[Behaviour]] = defaultdict(list)
    for behaviour in behaviours:
        if behaviour.kind not in SIGNALLESS:  # an impression says nothing about taste
            per_user[behaviour.user_id].append(behaviour)
    if not per_user:
        return 0
    lock_users(per_user)
    states = _stored_many(sorted(per_user), space)
    vectors = item_vectors(
        space,
        {b.item_id for u in states for b in per_user[u] if b.item_id is not None},
    )
    text_vectors = _text_vectors(space, ((b.kind, b.text) for u in states for b in per_user[u]))
    for user_id, state in states.items():
        for b in sorted(per_user[user_id], key=lambda b: (b.occurred_at, b.pk)):
            apply(
                state,
                kind=b.kind,
                occurred_at=b.occurred_at,
                value=b.value,
                item_vector=vectors.get(b.item_id),
                text_vector=text_vectors.get(b.text) if b.kind in TEXT_KINDS and b.text else None,
            )
    states.update(recompute_many([u for u in per_user if u not in states], space))
    save_many(states, space)
    return len(per_user)


def save_many(states: dict[int, ProfileState], space: EncoderSpace) -> None:
    """``save`` for many users (user id → state) in bulk; empty states delete the row.

    Vectors go in binary (``vector_io``), one upsert per pattern of missing sums, since a
    ``vector[]`` parameter cannot hold NULLs.
    """
    empty = [user_id for user_id, state in states.items() if state.ref_time is None]
    if empty:
        UserProfile.objects.filter(space=space, user_id__in=empty).delete()
    groups: dict[tuple[bool, bool], list[int]] = defaultdict(list)
    for user_id, state in sorted(states.items()):
        if state.ref_time is not None:
            groups[(state.item_sum is not None, state.text_sum is not None)].append(user_id)
    table = UserProfile._meta.db_table
    now = timezone.now()
    for (has_items, has_texts), user_ids in groups.items():
        rows = [states[user_id] for user_id in user_ids]
        columns = ["user_id", "ref_time", "rating_sum", "rating_count", "events"]
        arrays = ["%s::bigint[]", "%s::timestamptz[]", "%s::float8[]", "%s::int[]", "%s::int[]"]
        params: list = [
            user_ids,
            [state.ref_time for state in rows],
            [float(state.rating_sum) for state in rows],
            [int(state.rating_count) for state in rows],
            [int(state.events) for state in rows],
        ]
        selected = {"item_sum": "NULL", "text_sum": "NULL"}
        for name, present in (("item_sum", has_items), ("text_sum", has_texts)):
            if present:
                columns.append(name)
                arrays.append("%s")
                params.append(vector_io.VectorArray(np.stack([getattr(s, name) for s in rows])))
                selected[name] = f"u.{name}"
        vector_io.execute(
            f"""
            INSERT INTO {table} (user_id, space_id, item_sum, text_sum, ref_time, rating_sum,
                rating_count, events, updated_at)
            SELECT u.user_id, %s, {selected["item_sum"]}, {selected["text_sum"]}, u.ref_time,
                u.rating_sum, u.rating_count, u.events, %s
            FROM unnest({", ".join(arrays)}) AS u({", ".join(columns)})
            ON CONFLICT (user_id, space_id) DO UPDATE SET item_sum = EXCLUDED.item_sum,
                text_sum = EXCLUDED.text_sum, ref_time = EXCLUDED.ref_time,
                rating_sum = EXCLUDED.rating_sum, rating_count = EXCLUDED.rating_count,
                events = EXCLUDED.events, updated_at = EXCLUDED.updated_at
            """,
            [space.pk, now, *params],
        )
