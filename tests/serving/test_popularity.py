"""Popularity heads: active items only, filtered like every other source."""

from recommender.models import Behaviour, EndUser, Item
from recommender.serving import filters, popularity


def test_popular_head_holds_active_items_only_and_respects_filters(space, make_items):
    items = make_items(4)
    user = EndUser.objects.create(external_id="u")
    for rank, item in enumerate(items):
        for _ in range(4 - rank):
            Behaviour.objects.create(user=user, item=item, kind="purchase")
    Item.objects.filter(pk=items[0].pk).update(is_active=False)
    Item.objects.filter(pk=items[3].pk).update(category="tea")
    table = popularity.popularity()
    assert items[0].pk not in table
    assert list(popularity.top_items(table, 2, filters.Filters())) == [items[1].pk, items[2].pk]
    assert list(popularity.top_items(table, 2, filters.Filters(exclude_ids={items[1].pk}))) == [
        items[2].pk,
        items[3].pk,
    ]
    assert list(popularity.top_items(table, 2, filters.Filters(category="tea"))) == [items[3].pk]


def test_the_heads_of_several_tables_are_checked_in_one_statement(space, make_items):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    items = make_items(6)
    for item in items[:3]:
        item.category = "tea"
        item.save()
    popular = {item.pk: 10.0 - n for n, item in enumerate(items)}
    trending = {item.pk: float(n) for n, item in enumerate(items)}
    tea = filters.Filters(category="tea")
    with CaptureQueriesContext(connection) as queries:
        heads = popularity.top_items_of([(popular, 2), (trending, 1)], tea)
    assert len(queries) == 1
    assert list(heads[0]) == [items[0].pk, items[1].pk]
    assert list(heads[1]) == [items[2].pk]  # the best trending tea item
    assert heads == [
        popularity.top_items(popular, 2, tea),
        popularity.top_items(trending, 1, tea),
    ]
