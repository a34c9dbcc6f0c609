"""User interest vectors: decayed, behaviour-weighted sums of item vectors and text vectors.

A profile keeps two sums per space, both decayed exponentially to a reference time:
``item_sum`` (weights per behaviour kind from settings; dislikes negative; ratings centred
on the user's own mean) and ``text_sum`` (vectors of the user's searches and reviews).
Because the decay is exponential, adding one event is exact and O(dim): decay the sums
to the event's time and add. ``recompute`` rebuilds a profile from the behaviour log (the
periodic task, and "as of" profiles for offline evaluation).
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from recommender import embedding, vector_io
from recommender.models import Behaviour, EncoderSpace, EndUser, ItemVector, UserProfile

TEXT_KINDS = ("search", "review")
SECONDS_PER_DAY = 86400.0


def _setting(name: str, default):
    return getattr(settings, name, default)


def half_life_seconds() -> float:
    return float(_setting("RECOMMENDER_PROFILE_HALF_LIFE_DAYS", 30.0)) * SECONDS_PER_DAY


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
        prior = float(_setting("RECOMMENDER_RATING_PRIOR", 3.0))
        return (self.rating_sum + 2 * prior) / (self.rating_count + 2)

    def vector(self) -> np.ndarray | None:
        """The unit-length profile vector, or None for a user with no usable history."""
        text_weight = float(_setting("RECOMMENDER_PROFILE_TEXT_WEIGHT", 0.3))
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
    weights = settings.RECOMMENDER_BEHAVIOUR_WEIGHTS
    weight = float(weights.get(kind, 0.0))
    if kind == "rating" and value is not None:
        scale = float(_setting("RECOMMENDER_RATING_SCALE", 2.0))
        weight += float(settings.RECOMMENDER_RATING_WEIGHT) * (value - state.rating_mean()) / scale
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


def recompute(
    user: EndUser | int, space: EncoderSpace, *, as_of: datetime | None = None
) -> ProfileState:
    """The exact profile from the behaviour log (events strictly before ``as_of``)."""
    events = Behaviour.objects.filter(user=user).order_by("occurred_at", "pk")
    if as_of is not None:
        events = events.filter(occurred_at__lt=as_of)
    rows = list(events.values_list("kind", "item_id", "value", "text", "occurred_at"))
    vectors = item_vectors(space, {row[1] for row in rows if row[1] is not None})
    texts = [row[3] for row in rows if row[0] in TEXT_KINDS and row[3]]
    text_vectors = dict(zip(texts, embedding.encoder_for(space).encode(texts), strict=True))
    state = ProfileState(item_sum=None, text_sum=None, ref_time=None)
    for kind, item_id, value, text, occurred_at in rows:
        apply(
            state,
            kind=kind,
            occurred_at=occurred_at,
            value=value,
            item_vector=vectors.get(item_id),
            text_vector=text_vectors.get(text) if kind in TEXT_KINDS and text else None,
        )
    return state


def save(user_id: int, space: EncoderSpace, state: ProfileState) -> None:
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
    pk, item_sum, text_sum, ref_time, rating_sum, rating_count, events, vector = rows[0]
    state = ProfileState(
        item_sum=vector_io.decode(item_sum),
        text_sum=vector_io.decode(text_sum),
        ref_time=ref_time,
        rating_sum=rating_sum,
        rating_count=rating_count,
        events=events,
    )
    return pk, state, vector_io.decode(vector)


def load(user: EndUser | int, space: EncoderSpace) -> ProfileState:
    """The stored profile, or one recomputed (and stored) when there is none yet."""
    user_id = user if isinstance(user, int) else user.pk
    stored = _stored(user_id, space)
    if stored is not None:
        return stored[1]
    state = recompute(user_id, space)
    save(user_id, space, state)
    return state


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
    stored = _stored(behaviour.user_id, space, for_update=True, item_id=behaviour.item_id)
    if stored is None:
        # First event in this space: the exact recompute already includes it.
        state = recompute(behaviour.user_id, space)
        save(behaviour.user_id, space, state)
        return state
    pk, state, item_vector = stored
    text_vector = None
    if behaviour.kind in TEXT_KINDS and behaviour.text:
        text_vector = embedding.encoder_for(space).encode([behaviour.text])[0]
    apply(
        state,
        kind=behaviour.kind,
        occurred_at=behaviour.occurred_at,
        value=behaviour.value,
        item_vector=item_vector,
        text_vector=text_vector,
    )
    # One UPDATE by key: the row is locked above, so no get-or-create dance is needed.
    UserProfile.objects.filter(pk=pk).update(**_columns(state), updated_at=timezone.now())
    return state
