"""What a behaviour says: the kinds, which are engagements, their order of strength, and
how much each counts.

Profiles, co-occurrence, popularity, evaluation, training, fine-tuning and the dashboard
all ask these questions; they ask them here, so that "a rating of 3 is not a positive
engagement" or "a like counts three views" is decided once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Case, FloatField, Q, Value, When
from django.utils import timezone

from recommender.conf import conf
from recommender.models import BehaviourKind

# Every kind an event may have.
KINDS: tuple[str, ...] = tuple(BehaviourKind.values)

# Kinds that say "I wanted this item" (a rating only from POSITIVE_RATING up).
ENGAGED: tuple[str, ...] = (
    "view",
    "click",
    "cart",
    "purchase",
    "like",
    "rating",
    "review",
    "share",
)

# Engagements from the weakest to the strongest, e.g. for the anchor an explanation names.
STRENGTH: tuple[str, ...] = (
    "view",
    "click",
    "share",
    "review",
    "rating",
    "like",
    "cart",
    "purchase",
)

# Kinds that say nothing about interest: never in a profile, never "seen" (an impression
# only says the item was on screen).
SIGNALLESS: tuple[str, ...] = ("impression",)

# Counting an engagement for popularity, no kind counts less than this (a view is a view).
POPULARITY_FLOOR = 0.5


def positive_rating() -> float:
    """The lowest rating that counts as a positive engagement (``RECOMMENDER_POSITIVE_RATING``)."""
    return float(conf.POSITIVE_RATING)


def is_positive(kind: str, value: float | None = None) -> bool:
    """Whether an event says the user liked the item."""
    if kind == BehaviourKind.RATING:
        return value is not None and value >= positive_rating()
    return kind in ENGAGED


def positive_q(min_rating: float | None = None, prefix: str = "") -> Q:
    """``is_positive`` as a filter on ``Behaviour`` rows with an item."""
    threshold = positive_rating() if min_rating is None else min_rating
    return Q(**{f"{prefix}item__isnull": False, f"{prefix}kind__in": ENGAGED}) & (
        ~Q(**{f"{prefix}kind": BehaviourKind.RATING}) | Q(**{f"{prefix}value__gte": threshold})
    )


def weight(kind: str) -> float:
    """How much one event of ``kind`` says about interest (``RECOMMENDER_BEHAVIOUR_WEIGHTS``;
    dislikes are negative). Profiles add a rating's distance from the user's mean."""
    return float(conf.BEHAVIOUR_WEIGHTS.get(kind, 0.0))


def seed_weight(kind: str, value: float | None = None) -> float:
    """How strongly a recent event makes its item a seed for "more like this" (0: not at
    all): the kind's weight, or for a rating its position above the middle of 0-5."""
    if kind == BehaviourKind.RATING and value is not None:
        return max(0.0, (value - 2.5) / 2.5)
    return max(weight(kind), 0.0)


def popularity_weight(kind: str) -> float:
    """How much one engagement of ``kind`` counts towards an item's popularity."""
    return max(float(conf.BEHAVIOUR_WEIGHTS.get(kind, 1.0)), POPULARITY_FLOOR)


def popularity_weight_sql() -> Case:
    """``popularity_weight(kind)`` as a SQL expression on ``Behaviour`` rows (0 for kinds
    that are not engagements)."""
    return Case(
        *[When(kind=kind, then=Value(popularity_weight(kind))) for kind in ENGAGED],
        default=Value(0.0),
        output_field=FloatField(),
    )


def retention_start(now: datetime | None = None) -> datetime | None:
    """The oldest time an event still counts from (``RECOMMENDER_BEHAVIOUR_RETENTION_DAYS``
    before ``now``), or None when events count forever."""
    days = conf.BEHAVIOUR_RETENTION_DAYS
    if days is None:
        return None
    return (now or timezone.now()) - timedelta(days=float(days))
