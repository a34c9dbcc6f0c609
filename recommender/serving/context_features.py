"""Ranking features from the request's context and the user's attributes.

Per request (the same value on every candidate of a list):

* ``hour_sin``, ``hour_cos``: the hour of day of the request (``as_of``, else now) in the
  site's time zone (``TIME_ZONE``), on the unit circle so that 23:00 is next to 01:00;
* ``is_mobile``: 1 when the context's ``device`` is mobile, phone, tablet or app.

A feature that is the same for every candidate adds the same amount to every score: a
weighted sum of them (the fixed blend, a logistic ranker) never changes a list's order.
They matter only through the factorization machine's pairwise interactions, where
``is_mobile`` × ``popularity`` or the hour × ``freshness`` lets the weight of a candidate
feature depend on the context. The blend gives them no weight.

Per candidate (shares of the candidate's category, 0 when the request says nothing):

* ``segment_category_affinity``: for each user attribute named in
  ``RECOMMENDER_SEGMENT_ATTRIBUTE`` (segment, age band, language … by default) that the
  requesting user has, the share of positive engagements in the candidate's category
  among the users with the same value, averaged over those attributes;
* ``context_category_affinity``: the same share among events sent with the request's
  context device (``Behaviour.context->>'device'``): "mobile shoppers buy accessories".

Each share table is one grouped query over the positive engagements of the ``WINDOW_DAYS``
before the request (all time before it when that window holds none), shared through the
cache for ``CACHE_SECONDS`` per attribute value or device. Only events before the request's
``as_of`` count, so a training pool built as of a past event sees nothing that came later.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db.models import Count, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from recommender import behaviour, sharedcache
from recommender.conf import conf
from recommender.models import Behaviour, EndUser

if TYPE_CHECKING:  # the pipeline imports the candidate pool, which imports this module
    from recommender.serving.pipeline import RecommendationRequest
    from recommender.serving.ranking import Candidate

MOBILE_DEVICES = frozenset({"mobile", "phone", "tablet", "app"})

# The engagements the share tables count: those of the last WINDOW_DAYS before the request.
WINDOW_DAYS = 90

# How long the processes share a share table (and how far back the table's cut may be
# from the request: it is computed as of the start of its CACHE_SECONDS bucket).
CACHE_SECONDS = 300

# Categories a share table holds at most (the largest; a bounded read).
CATEGORY_LIMIT = 1000


def add_features(request: RecommendationRequest, candidates: Sequence[Candidate]) -> None:
    """Fill the context features of every candidate of ``request`` (in place)."""
    if not candidates:
        return
    now = request.as_of or timezone.now()
    constants = request_features(now, request.context)
    segment = segment_shares(request.user, now)
    device = device_shares(context_device(request.context), now)
    for candidate in candidates:
        candidate.features.update(constants)
        candidate.features["segment_category_affinity"] = segment.get(candidate.category, 0.0)
        candidate.features["context_category_affinity"] = device.get(candidate.category, 0.0)


def request_features(moment: datetime, context: dict | None) -> dict[str, float]:
    """``hour_sin``, ``hour_cos`` and ``is_mobile`` of a request at ``moment``."""
    local = timezone.localtime(moment, timezone.get_default_timezone())
    hour = local.hour + local.minute / 60.0 + local.second / 3600.0
    angle = 2.0 * math.pi * hour / 24.0
    device = context_device(context)
    return {
        "hour_sin": math.sin(angle),
        "hour_cos": math.cos(angle),
        "is_mobile": 1.0 if device and device.lower() in MOBILE_DEVICES else 0.0,
    }


def context_device(context: dict | None) -> str | None:
    """The device a context names (its ``device`` key), or None."""
    device = (context or {}).get("device")
    return (device.strip() or None) if isinstance(device, str) else None


def segment_attributes() -> list[str]:
    """The user attributes that group users (``RECOMMENDER_SEGMENT_ATTRIBUTE``, names
    separated by commas)."""
    return [name.strip() for name in str(conf.SEGMENT_ATTRIBUTE).split(",") if name.strip()]


def user_segments(user: EndUser | None) -> list[tuple[str, str]]:
    """(attribute, value as PostgreSQL's ``->>`` reads it) for each of
    ``segment_attributes()`` the user has a plain value for."""
    if user is None or not isinstance(user.attributes, dict):
        return []
    found = []
    for name in segment_attributes():
        value = user.attributes.get(name)
        if value is None or value == "" or isinstance(value, dict | list):
            continue
        found.append((name, value if isinstance(value, str) else json.dumps(value)))
    return found


def segment_shares(user: EndUser | None, as_of: datetime) -> dict[str, float]:
    """Category → share of the engagements of the users who share ``user``'s value of an
    attribute, averaged over the attributes the user has (a user with none: empty)."""
    segments = user_segments(user)
    if not segments:
        return {}
    total: dict[str, float] = {}
    for name, value in segments:
        events = Behaviour.objects.alias(segment=KeyTextTransform(name, "user__attributes")).filter(
            segment=value
        )
        for category, share in _cached_shares(f"segment:{name}:{value}", events, as_of).items():
            total[category] = total.get(category, 0.0) + share / len(segments)
    return total


def device_shares(device: str | None, as_of: datetime) -> dict[str, float]:
    """Category → share of the engagements sent with context device ``device``."""
    if device is None:
        return {}
    events = Behaviour.objects.alias(device=KeyTextTransform("device", "context")).filter(
        device=device
    )
    return _cached_shares(f"device:{device}", events, as_of)


def _cached_shares(group: str, events: QuerySet, as_of: datetime) -> dict[str, float]:
    # Cut at the start of the cache bucket, so that every process sharing the table
    # computed it over the same events, and none of them after ``as_of``.
    bucket = int(as_of.timestamp()) // CACHE_SECONDS * CACHE_SECONDS
    end = datetime.fromtimestamp(bucket, tz=as_of.tzinfo or timezone.get_default_timezone())
    digest = hashlib.blake2b(group.encode(), digest_size=12).hexdigest()
    key = f"recsite:category-shares:{digest}:{bucket}"
    shares = sharedcache.get(key)
    if shares is None:
        shares = category_shares(events, end)
        sharedcache.set(key, shares, CACHE_SECONDS)
    return shares


def category_shares(events: QuerySet, end: datetime) -> dict[str, float]:
    """Category → share of the positive engagements among ``events`` in the ``WINDOW_DAYS``
    before ``end`` (all time before it when the window holds none)."""
    before = events.filter(behaviour.positive_q(), occurred_at__lt=end).exclude(item__category="")
    counts = _counts(before.filter(occurred_at__gte=end - timedelta(days=WINDOW_DAYS)))
    if not counts:
        counts = _counts(before)
    total = sum(counts.values())
    return {category: n / total for category, n in counts.items()} if total else {}


def _counts(events: QuerySet) -> dict[str, int]:
    rows = (
        events.order_by()
        .values("item__category")
        .annotate(n=Count("id"))
        .order_by("-n")
        .values_list("item__category", "n")[:CATEGORY_LIMIT]
    )
    return dict(rows)
