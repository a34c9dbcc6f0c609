"""A small served-list log with hand-counted figures, shared by the online-metrics tests.

Items sku-0 … sku-5 (sku-5 inactive). Lists served now:

    L1 home/a:  1 sku-0 [history, popular]  2 sku-1 [popular]  3 sku-2 [vector]
    L2 home/b:  1 sku-1 [vector]            2 sku-3 [popular]
    L3 cart/"": 1 sku-4 []                  2 sku-5 [popular]
    L4 empty/"": no items
    old home/a, 30 days ago: 1 sku-0 [popular] (outside every window used)

Events: L1 impressions at 1, 2, 3, clicks at 1 and 3, a purchase of sku-0 naming L1 but no
position (credited to position 1, where sku-0 was); L2 impressions at 1, 2, a click at 2;
L3 no impression, a click at position 9 (beyond the list: in the totals, not in the
position or source breakdowns); a click on the old list; a click naming no list.
"""

import uuid
from datetime import timedelta

from django.utils import timezone

from recommender.models import Behaviour, EndUser, Item, ServedList


def entry(item: Item, position: int, *sources: str) -> dict:
    return {"item": item.pk, "position": position, "score": 1.0, "sources": list(sources)}


def build(make_items) -> dict[str, uuid.UUID]:
    items = make_items(6)
    Item.objects.filter(pk=items[5].pk).update(is_active=False)
    now = timezone.now()
    lists = {
        "L1": ("home", "a", [entry(items[0], 1, "history", "popular"),
                             entry(items[1], 2, "popular"), entry(items[2], 3, "vector")], now),
        "L2": ("home", "b", [entry(items[1], 1, "vector"), entry(items[3], 2, "popular")], now),
        "L3": ("cart", "", [entry(items[4], 1), entry(items[5], 2, "popular")], now),
        "L4": ("empty", "", [], now),
        "old": ("home", "a", [entry(items[0], 1, "popular")], now - timedelta(days=30)),
    }  # fmt: skip
    ids = {name: uuid.uuid4() for name in lists}
    ServedList.objects.bulk_create(
        ServedList(id=ids[name], endpoint="recommendations", scenario=scenario, variant=variant,
                   items=served, served_at=at)
        for name, (scenario, variant, served, at) in lists.items()
    )  # fmt: skip
    user = EndUser.objects.create(external_id="alice")

    def event(kind: str, item: int, name: str | None, position: int | None = None) -> Behaviour:
        return Behaviour(
            user=user, item=items[item], kind=kind, position=position,
            recommendation_id=ids[name] if name else None,
        )  # fmt: skip

    Behaviour.objects.bulk_create(
        [
            *(event("impression", i, "L1", i + 1) for i in range(3)),
            event("click", 0, "L1", 1),
            event("click", 2, "L1", 3),
            event("purchase", 0, "L1"),
            event("impression", 1, "L2", 1),
            event("impression", 3, "L2", 2),
            event("click", 3, "L2", 2),
            event("click", 4, "L3", 9),
            event("click", 0, "old", 1),
            event("click", 1, None),
        ]
    )
    return ids
