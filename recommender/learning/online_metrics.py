"""Online metrics: how the served lists did with real shoppers, per scenario and day.

Read from the served-list log and the events that name their list (their
``recommendation_id``): lists served, items shown, impressions, clicks, carts and
purchases, click-through rate (clicks per impression, or per item shown where a scenario's
clients report no impressions) and conversion rate (purchases per click), each rate with
a 95 % Wilson interval. Conversions counted here are those that name their list; the
window attribution of ``serving.attribution`` is per event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db import connection
from django.utils import timezone

from recommender.models import Behaviour, ServedList

Z95 = 1.959964


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ((0, 0) without trials)."""
    if trials <= 0:
        return (0.0, 0.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Rate:
    value: float
    low: float
    high: float

    @classmethod
    def of(cls, successes: int, trials: int) -> Rate:
        low, high = wilson(successes, trials)
        return cls(successes / trials if trials else 0.0, low, high)


@dataclass
class ScenarioDay:
    scenario: str
    day: date
    lists: int = 0
    shown: int = 0  # items in the lists served
    impressions: int = 0
    clicks: int = 0
    carts: int = 0
    purchases: int = 0
    ctr: Rate = field(default_factory=lambda: Rate(0.0, 0.0, 0.0))
    conversion: Rate = field(default_factory=lambda: Rate(0.0, 0.0, 0.0))


def scenario_days(days: int = 14, *, now: datetime | None = None) -> list[ScenarioDay]:
    """Per scenario ("" for lists served without one) and day, the last ``days`` days."""
    since = (now or timezone.now()) - timedelta(days=days)
    served = ServedList._meta.db_table
    events = Behaviour._meta.db_table
    # Two grouped scans joined in Python: the lists, and the events naming them.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT scenario, served_at::date, count(*), "
            f"coalesce(sum(jsonb_array_length(items)), 0) FROM {served} "
            "WHERE served_at >= %s GROUP BY 1, 2",
            [since],
        )
        lists = cursor.fetchall()
        cursor.execute(
            f"SELECT s.scenario, s.served_at::date, b.kind, count(*) FROM {events} b "
            f"JOIN {served} s ON s.id = b.recommendation_id "
            "WHERE s.served_at >= %s AND b.kind IN ('impression', 'click', 'cart', 'purchase') "
            "GROUP BY 1, 2, 3",
            [since],
        )
        counted = cursor.fetchall()
    rows: dict[tuple[str, date], ScenarioDay] = {}
    for scenario, day, n_lists, n_shown in lists:
        rows[(scenario, day)] = ScenarioDay(scenario, day, lists=n_lists, shown=int(n_shown))
    kinds = {
        "impression": "impressions",
        "click": "clicks",
        "cart": "carts",
        "purchase": "purchases",
    }
    for scenario, day, kind, n in counted:
        row = rows.setdefault((scenario, day), ScenarioDay(scenario, day))
        setattr(row, kinds[kind], n)
    for row in rows.values():
        seen = row.impressions or row.shown
        row.ctr = Rate.of(min(row.clicks, seen), seen)
        row.conversion = Rate.of(min(row.purchases, row.clicks), row.clicks)
    return sorted(rows.values(), key=lambda r: (r.day, r.scenario), reverse=True)
