"""Rotation: items a user keeps being shown and keeps ignoring sink in their lists.

An item with at least ``after`` impressions for the user in the last
``RECOMMENDER_EXPOSURE_WINDOW_DAYS`` days, and no engagement with it in that time, keeps
only ``demotion`` of its score, so the next list makes room for something not yet tried.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.utils import timezone

from recommender import behaviour, dbroute
from recommender.conf import conf
from recommender.models import Behaviour


def ignored_items(user_id: int, after: int, *, as_of: datetime | None = None) -> set[int]:
    """Items shown to the user ``after`` times or more in the window before ``as_of``
    (now by default), never engaged with in it."""
    end = as_of or timezone.now()
    since = end - timedelta(days=float(conf.EXPOSURE_WINDOW_DAYS))
    with dbroute.read_connection().cursor() as cursor:
        cursor.execute(
            f"SELECT item_id FROM {Behaviour._meta.db_table} "
            "WHERE user_id = %s AND occurred_at >= %s AND occurred_at < %s "
            "AND item_id IS NOT NULL "
            "GROUP BY item_id HAVING count(*) FILTER (WHERE kind = 'impression') >= %s "
            "AND count(*) FILTER (WHERE kind = ANY(%s)) = 0",
            [user_id, since, end, after, list(behaviour.ENGAGED)],
        )
        return {row[0] for row in cursor.fetchall()}


def demote(candidates: Iterable, user_id: int, after: int, demotion: float) -> int:
    """Lower the scores of the user's ignored items in place; how many were lowered.
    Scores may be negative (a disliked neighbour): demoting always moves an item down."""
    ignored = ignored_items(user_id, after)
    lowered = 0
    for candidate in candidates:
        if candidate.item_id in ignored:
            candidate.score -= abs(candidate.score) * (1.0 - demotion)
            lowered += 1
    return lowered
