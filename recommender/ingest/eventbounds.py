"""What an event may say: how far ahead of the server's clock its time may lie, and the
range of its value for each kind. The API's serializer and the importer both apply these.

Both bounds protect profiles: an event dated in the future decays every stored sum to
almost nothing and freezes the profile on that one item (each later event looks "late"),
and a huge rating outweighs everything else the user did.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from recommender.conf import conf

# Any value of a kind other than a rating (no kind uses it today) stays within this.
VALUE_LIMIT = 1e6


def time_problem(occurred_at: datetime | None, now: datetime | None = None) -> str | None:
    """Why ``occurred_at`` is refused (too far in the future), or None."""
    if occurred_at is None:
        return None
    skew = conf.MAX_CLOCK_SKEW_SECONDS
    if occurred_at > (now or timezone.now()) + timedelta(seconds=skew):
        return (
            f"lies more than {skew} seconds in the future; send the time the event "
            "happened (is the client's clock or time zone wrong?)"
        )
    return None


def value_problem(kind: str, value: float | None) -> str | None:
    """Why ``value`` is refused for an event of ``kind``, or None."""
    if value is None:
        return None
    if kind == "rating":
        low, high = conf.RATING_RANGE
        if not low <= value <= high:
            return f"a rating must lie between {low:g} and {high:g} (the configured scale)"
    elif not -VALUE_LIMIT <= value <= VALUE_LIMIT:
        return f"must lie between {-VALUE_LIMIT:g} and {VALUE_LIMIT:g}"
    return None
