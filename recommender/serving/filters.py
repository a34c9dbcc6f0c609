"""Business filters every candidate source applies in SQL: category, attribute ranges,
active items, exclusions."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from django.core.exceptions import FullResultSet
from django.db import connection
from django.db.models import Q

from recommender.models import (
    Item,
)


@dataclass
class Filters:
    """Business filters applied in SQL to every source."""

    category: str | None = None
    attribute_ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    exclude_ids: set[int] = field(default_factory=set)
    active_only: bool = True

    @property
    def narrows_items(self) -> bool:
        """Whether the filters exclude more than inactive items (a category or a range)."""
        return bool(self.category or self.attribute_ranges)

    def item_q(self) -> Q:
        """The filters on ``Item`` (``exclude_ids`` apart: each source applies those)."""
        q = Q()
        if self.active_only:
            q &= Q(is_active=True)
        if self.category:
            q &= Q(category=self.category)
        for name, (low, high) in self.attribute_ranges.items():
            if low is not None:
                q &= Q(**{f"attributes__{name}__gte": low})
            if high is not None:
                q &= Q(**{f"attributes__{name}__lte": high})
        return q


def item_where(filters: Filters) -> tuple[str, list]:
    """``filters.item_q()`` as SQL over the item table's own name (for raw joins).

    Compiled once per distinct filter (the ORM takes ~0.3 ms, three times a request)."""
    ranges = tuple(sorted(filters.attribute_ranges.items()))
    sql, params = _compiled_where(filters.category, ranges, filters.active_only)
    return sql, list(params)


@functools.lru_cache(maxsize=512)
def _compiled_where(category, ranges, active_only) -> tuple[str, tuple]:
    filters = Filters(category=category, attribute_ranges=dict(ranges), active_only=active_only)
    query = Item.objects.filter(filters.item_q()).query
    try:
        sql, params = query.get_compiler(connection=connection).compile(query.where)
    except FullResultSet:
        return "TRUE", ()
    return sql or "TRUE", tuple(params)
