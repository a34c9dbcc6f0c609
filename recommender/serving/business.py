"""Business rules on the request path: the filters a request and its scenario set, the
boosters that move scores, and the promotions that keep slots.

The language itself (grammar, types, SQL) is ``serving.rules``; this module binds a
request's user, context and parameters to it and applies the results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from recommender import attributes, dbroute
from recommender.models import Item
from recommender.serving import rules
from recommender.serving.filters import Filters
from recommender.serving.ranking import Candidate

# The largest multiplier a booster may apply, and the smallest: a booster is a nudge, and
# a runaway expression (``price * 1e9``) must not decide a list alone.
MAX_BOOST = 100.0
MIN_BOOST = 0.0
_BOTTOM = -1e6


class RuleFailure(ValueError):
    """A rule that parsed but cannot bind to this request (a ``$parameter`` not given, a
    reference of the wrong type): ``field`` ("filter" or "boost") and a message naming
    the expression."""

    def __init__(self, field: str, text: str, error: rules.RuleError):
        self.field = field
        self.message = f"{text!r}: {error}"
        super().__init__(self.message)


def _compiled(text: str, kind: str, **bound) -> tuple[str, list]:
    try:
        return rules.to_sql(parse(text, kind), table=Item._meta.db_table, **bound)
    except rules.RuleError as exc:
        raise RuleFailure(kind, text, exc) from None


@dataclass(frozen=True)
class PromotionSlot:
    """A promotion as a list uses it: its name, its filter, its share of the slots."""

    name: str
    filter: str
    share: float

    def slots(self, k: int) -> int:
        """How many of ``k`` slots it keeps: its share rounded, at least one, at most k."""
        if self.share <= 0:
            return 0
        return min(k, max(1, math.floor(self.share * k + 0.5)))


def parse(text: str, kind: str = "filter") -> rules.Rule:
    """``text`` parsed against the site's attribute schema; raises ``rules.RuleError``."""
    return rules.parse(text, kind, attributes.types())


def _bindings(user, context: Mapping | None, params: Mapping | None, now: datetime | None):
    return {
        "user": dict(user.attributes or {}) if user is not None else {},
        "context": dict(context or {}),
        "params": dict(params or {}),
        "now": now,
    }


def with_rules(
    filters: Filters,
    texts: Sequence[str],
    *,
    user=None,
    context: Mapping | None = None,
    params: Mapping | None = None,
    now: datetime | None = None,
) -> Filters:
    """``filters`` with each filter expression of ``texts`` compiled for this request
    (its user's attributes, its context, its ``$parameters``). Raises :class:`RuleFailure`."""
    bound = _bindings(user, context, params, now)
    for text in texts:
        if text and text.strip():
            filters = filters.with_rule(*_compiled(text, "filter", **bound))
    return filters


def next_change(
    texts: Sequence[str],
    item_ids: Sequence[int],
    *,
    after: datetime,
    user=None,
    context: Mapping | None = None,
    params: Mapping | None = None,
) -> datetime | None:
    """The first moment from ``after`` on at which a filter of ``texts`` that reads the clock
    (``now()``) may change its verdict on one of ``item_ids`` (``rules.clock``): ``after``
    itself when a filter's moments cannot be told, None when no verdict changes. A list
    those filters chose holds until then. One statement for the moments of item fields.
    Raises :class:`RuleFailure`."""
    bound = _bindings(user, context, params, after)
    found: list[datetime] = []
    columns: list[tuple[str, tuple]] = []
    for text in texts:
        if not (text and text.strip()):
            continue
        try:
            moved = rules.clock(parse(text, "filter"), table=Item._meta.db_table, **bound)
        except rules.RuleError as exc:
            raise RuleFailure("filter", text, exc) from None
        if not moved.settled:
            return after
        found += [moment for moment in moved.moments if moment >= after]
        columns += moved.columns
    if columns and item_ids:
        table = Item._meta.db_table
        array = "ARRAY[" + ", ".join(sql for sql, _ in columns) + "]::timestamptz[]"
        with dbroute.read_connection().cursor() as cursor:
            cursor.execute(
                f"SELECT min(moment) FROM (SELECT unnest({array}) AS moment FROM {table} "
                f"WHERE {table}.id = ANY(%s::bigint[])) moments WHERE moment >= %s",
                [*(param for _, params_ in columns for param in params_), list(item_ids), after],
            )
            (first,) = cursor.fetchone()
        if first is not None:
            found.append(first)
    return min(found, default=None)


def boost(
    candidates: Sequence[Candidate],
    texts: Sequence[str],
    *,
    user=None,
    context: Mapping | None = None,
    params: Mapping | None = None,
    now: datetime | None = None,
) -> dict[int, float]:
    """Multiply each candidate's score by every booster of ``texts`` (evaluated in SQL
    over the candidates' rows, one statement for all boosters); returns item id → the
    multiplier applied. A negative score is divided instead, so a boost above 1 always
    moves an item up; a boost of 0 puts the item last. Raises :class:`RuleFailure`."""
    texts = [text for text in texts if text and text.strip()]
    if not candidates or not texts:
        return {}
    bound = _bindings(user, context, params, now)
    table = Item._meta.db_table
    expressions, sql_params = [], []
    for text in texts:
        sql, expression_params = _compiled(text, "boost", neutral=1.0, **bound)
        expressions.append(f"({sql})")
        sql_params.extend(expression_params)
    product = " * ".join(expressions)
    with dbroute.read_connection().cursor() as cursor:
        cursor.execute(
            f"SELECT {table}.id, ({product})::float8 FROM {table} "
            f"WHERE {table}.id = ANY(%s::bigint[])",
            [*sql_params, [c.item_id for c in candidates]],
        )
        factors = {item_id: value for item_id, value in cursor.fetchall()}
    applied = {}
    for candidate in candidates:
        factor = factors.get(candidate.item_id)
        if factor is None or not math.isfinite(factor):
            continue
        factor = min(MAX_BOOST, max(MIN_BOOST, factor))
        if factor == 1.0:
            continue
        if factor <= 0:  # "never first": below every other item, in their own order
            candidate.score = _BOTTOM + candidate.score * 1e-6
        elif candidate.score >= 0:
            candidate.score *= factor
        else:
            candidate.score /= factor
        applied[candidate.item_id] = factor
    return applied
