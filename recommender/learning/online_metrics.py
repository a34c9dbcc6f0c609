"""Online metrics: how the served lists did with real shoppers, per scenario and day, per
variant, per candidate source and per position.

Read from the served-list log and the events that name their list (their
``recommendation_id``): lists served, items shown, impressions, clicks, carts and
purchases, click-through rate (clicks per impression, or per item shown where no
impression was reported) and conversion rate (purchases per click), each rate with a 95 %
Wilson interval. Conversions counted here are those that name their list; the window
attribution of ``serving.attribution`` is per event.

Every breakdown covers the lists served in the last ``days`` days (and the events naming
them, whenever they arrived), optionally of one scenario (``""``: lists served without
one):

* :func:`scenario_days`: per scenario and day;
* :func:`variants`: per scenario and variant (``""`` for lists served outside an
  experiment);
* :func:`sources`: per candidate source. An event is credited to the served item it names:
  the one at its ``position`` in the list, or, for an event without a position, the list's
  entry for the event's item. **An item proposed by several sources counts once for each
  of them** (a click on an item both ``popular`` and ``history`` proposed is a click for
  ``popular`` and one for ``history``), so the per-source counts add up to more than the
  totals; items with no source count under ``""``;
* :func:`position_curve`: per position 1..N, with the same crediting (events whose position
  lies beyond their list's length are left out);
* :func:`coverage`: per scenario, the distinct items shown against the active catalogue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db import connection
from django.utils import timezone

from recommender.models import Behaviour, Item, ServedList

Z95 = 1.959964

# Event kind -> the counter it adds to.
KINDS = {
    "impression": "impressions",
    "click": "clicks",
    "cart": "carts",
    "purchase": "purchases",
}
_KIND_SQL = "b.kind IN ('impression', 'click', 'cart', 'purchase')"

# The list entry an event names, as ``hit.ord`` (1-based) and ``hit.entry``: the one at
# the event's position, or, without a position, the entry of the event's item (its first,
# should a list hold an item twice). _HIT_FOUND leaves out events with no such entry (a
# position beyond the list or below 1, an item not in it).
_HIT = (
    "CROSS JOIN LATERAL (SELECT coalesce(b.position, ("
    "SELECT e.ord FROM jsonb_array_elements(s.items) WITH ORDINALITY AS e(entry, ord) "
    "WHERE e.entry ->> 'item' = b.item_id::text ORDER BY e.ord LIMIT 1))::int AS ord) AS at "
    "CROSS JOIN LATERAL (SELECT at.ord, s.items -> (at.ord - 1) AS entry) AS hit"
)
_HIT_FOUND = "hit.ord >= 1 AND hit.entry IS NOT NULL"


def _sources_of(entry: str) -> str:
    """The sources of a list entry (SQL expression ``entry``), one row each; none -> NULL."""
    return (
        "LEFT JOIN LATERAL jsonb_array_elements_text(CASE WHEN "
        f"jsonb_typeof({entry} -> 'sources') = 'array' THEN {entry} -> 'sources' "
        "ELSE '[]'::jsonb END) AS src(source) ON true"
    )


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


def _zero() -> Rate:
    return Rate(0.0, 0.0, 0.0)


@dataclass
class Counted:
    """What the events naming a set of served items add up to, with the rates."""

    shown: int = 0  # items in the lists served
    impressions: int = 0
    clicks: int = 0
    carts: int = 0
    purchases: int = 0
    ctr: Rate = field(default_factory=_zero)
    conversion: Rate = field(default_factory=_zero)

    def rate(self) -> None:
        """CTR per impression (per item shown when none was reported); conversion per click."""
        seen = self.impressions or self.shown
        self.ctr = Rate.of(min(self.clicks, seen), seen)
        self.conversion = Rate.of(min(self.purchases, self.clicks), self.clicks)


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
    ctr: Rate = field(default_factory=_zero)
    conversion: Rate = field(default_factory=_zero)


@dataclass
class VariantRow(Counted):
    scenario: str = ""
    variant: str = ""  # "" outside an experiment
    lists: int = 0


@dataclass
class SourceRow(Counted):
    source: str = ""  # "" for items served without a source


@dataclass
class PositionRow(Counted):
    position: int = 0  # 1-based


@dataclass
class ScenarioCoverage:
    scenario: str
    lists: int
    items_shown: int  # distinct items shown (active or not)
    active_items_shown: int  # of them, those active now
    active_items: int  # active items in the catalogue

    @property
    def coverage(self) -> float:
        """The share of the active catalogue shown at least once."""
        return self.active_items_shown / self.active_items if self.active_items else 0.0


def _window(days: int, now: datetime | None, scenario: str | None) -> tuple[str, list]:
    """The WHERE clause over the served lists ``s`` of the window, and its parameters."""
    since = (now or timezone.now()) - timedelta(days=days)
    where, params = ["s.served_at >= %s"], [since]
    if scenario is not None:
        where.append("s.scenario = %s")
        params.append(scenario)
    return " AND ".join(where), params


def _fetch(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _per_list(group: str, where: str, params: list) -> tuple[list[tuple], list[tuple]]:
    """Two grouped scans by ``group`` (SQL over ``s``): (keys..., lists, items shown), and
    (keys..., kind, events) for the events naming the lists."""
    served, events = ServedList._meta.db_table, Behaviour._meta.db_table
    n = group.count(",") + 1
    keys = ", ".join(str(i) for i in range(1, n + 1))
    lists = _fetch(
        f"SELECT {group}, count(*), coalesce(sum(jsonb_array_length(s.items)), 0) "
        f"FROM {served} s WHERE {where} GROUP BY {keys}",
        params,
    )
    counted = _fetch(
        f"SELECT {group}, b.kind, count(*) FROM {events} b "
        f"JOIN {served} s ON s.id = b.recommendation_id "
        f"WHERE {where} AND {_KIND_SQL} GROUP BY {keys}, {n + 1}",
        params,
    )
    return lists, counted


def scenario_days(
    days: int = 14, *, scenario: str | None = None, now: datetime | None = None
) -> list[ScenarioDay]:
    """Per scenario ("" for lists served without one) and day, the last ``days`` days,
    newest first."""
    where, params = _window(days, now, scenario)
    lists, counted = _per_list("s.scenario, s.served_at::date", where, params)
    rows: dict[tuple[str, date], ScenarioDay] = {}
    for name, day, n_lists, n_shown in lists:
        rows[(name, day)] = ScenarioDay(name, day, lists=n_lists, shown=int(n_shown))
    for name, day, kind, n in counted:
        row = rows.setdefault((name, day), ScenarioDay(name, day))
        setattr(row, KINDS[kind], n)
    for row in rows.values():
        seen = row.impressions or row.shown
        row.ctr = Rate.of(min(row.clicks, seen), seen)
        row.conversion = Rate.of(min(row.purchases, row.clicks), row.clicks)
    return sorted(rows.values(), key=lambda r: (r.day, r.scenario), reverse=True)


def variants(
    days: int = 14, *, scenario: str | None = None, now: datetime | None = None
) -> list[VariantRow]:
    """Per scenario and variant ("" outside an experiment), the last ``days`` days."""
    where, params = _window(days, now, scenario)
    lists, counted = _per_list("s.scenario, s.variant", where, params)
    rows: dict[tuple[str, str], VariantRow] = {}
    for name, variant, n_lists, n_shown in lists:
        rows[(name, variant)] = VariantRow(
            scenario=name, variant=variant, lists=n_lists, shown=int(n_shown)
        )
    for name, variant, kind, n in counted:
        row = rows.setdefault((name, variant), VariantRow(scenario=name, variant=variant))
        setattr(row, KINDS[kind], n)
    for row in rows.values():
        row.rate()
    return sorted(rows.values(), key=lambda r: (r.scenario, r.variant))


def sources(
    days: int = 14, *, scenario: str | None = None, now: datetime | None = None
) -> list[SourceRow]:
    """Per candidate source, the last ``days`` days, the most shown first. An item with
    several sources counts for each (see the module's docstring): the rows overlap."""
    where, params = _window(days, now, scenario)
    served, events = ServedList._meta.db_table, Behaviour._meta.db_table
    shown = _fetch(
        f"SELECT coalesce(src.source, ''), count(*) FROM {served} s "
        "CROSS JOIN LATERAL jsonb_array_elements(s.items) AS e(entry) "
        f"{_sources_of('e.entry')} WHERE {where} GROUP BY 1",
        params,
    )
    counted = _fetch(
        f"SELECT coalesce(src.source, ''), b.kind, count(*) FROM {events} b "
        f"JOIN {served} s ON s.id = b.recommendation_id {_HIT} {_sources_of('hit.entry')} "
        f"WHERE {where} AND {_KIND_SQL} AND {_HIT_FOUND} GROUP BY 1, 2",
        params,
    )
    rows: dict[str, SourceRow] = {name: SourceRow(source=name, shown=n) for name, n in shown}
    for name, kind, n in counted:
        setattr(rows.setdefault(name, SourceRow(source=name)), KINDS[kind], n)
    for row in rows.values():
        row.rate()
    return sorted(rows.values(), key=lambda r: (-r.shown, r.source))


def position_curve(
    days: int = 14, *, scenario: str | None = None, now: datetime | None = None
) -> list[PositionRow]:
    """Per position 1..N (N: the longest list served), the last ``days`` days: items shown
    there, impressions, clicks, carts, purchases and the CTR."""
    where, params = _window(days, now, scenario)
    served, events = ServedList._meta.db_table, Behaviour._meta.db_table
    shown = _fetch(
        f"SELECT e.ord, count(*) FROM {served} s "
        "CROSS JOIN LATERAL jsonb_array_elements(s.items) WITH ORDINALITY AS e(entry, ord) "
        f"WHERE {where} GROUP BY 1",
        params,
    )
    counted = _fetch(
        f"SELECT hit.ord, b.kind, count(*) FROM {events} b "
        f"JOIN {served} s ON s.id = b.recommendation_id {_HIT} "
        f"WHERE {where} AND {_KIND_SQL} AND {_HIT_FOUND} GROUP BY 1, 2",
        params,
    )
    longest = max((int(position) for position, _ in shown), default=0)
    rows = [PositionRow(position=p) for p in range(1, longest + 1)]
    for position, n in shown:
        rows[int(position) - 1].shown = n
    for position, kind, n in counted:
        setattr(rows[int(position) - 1], KINDS[kind], n)
    for row in rows:
        row.rate()
    return rows


def coverage(
    days: int = 14, *, scenario: str | None = None, now: datetime | None = None
) -> list[ScenarioCoverage]:
    """Per scenario, the last ``days`` days: the distinct items its lists showed, and the
    share of the active catalogue they make up."""
    where, params = _window(days, now, scenario)
    served, items = ServedList._meta.db_table, Item._meta.db_table
    lists = _fetch(f"SELECT s.scenario, count(*) FROM {served} s WHERE {where} GROUP BY 1", params)
    # The distinct (scenario, item) pairs first, then their items: no DISTINCT aggregate.
    shown = {
        name: (n_items, n_active)
        for name, n_items, n_active in _fetch(
            f"WITH shown AS (SELECT s.scenario, e.entry ->> 'item' AS item FROM {served} s "
            "CROSS JOIN LATERAL jsonb_array_elements(s.items) AS e(entry) "
            f"WHERE {where} GROUP BY 1, 2) "
            "SELECT shown.scenario, count(*), count(*) FILTER (WHERE i.is_active) FROM shown "
            f"LEFT JOIN {items} i ON i.id::text = shown.item GROUP BY 1",
            params,
        )
    }
    active = Item.objects.filter(is_active=True).count()
    return [
        ScenarioCoverage(name, n_lists, *shown.get(name, (0, 0)), active)
        for name, n_lists in sorted(lists)
    ]
