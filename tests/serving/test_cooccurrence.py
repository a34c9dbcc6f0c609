"""Co-occurrence candidates: weighted scores summed in SQL."""

import pytest

from recommender.models import Item, ItemCooccurrence
from recommender.serving import cooccurrence, filters


def test_cooccurrence_candidates_sum_weighted_scores_and_name_the_strongest_seed(space, make_items):
    a, b, x, y, z, gone = make_items(6)
    Item.objects.filter(pk=gone.pk).update(is_active=False)
    ItemCooccurrence.objects.bulk_create(
        [
            ItemCooccurrence(item=a, other=x, score=0.5, count=3),
            ItemCooccurrence(item=b, other=x, score=0.4, count=2),
            ItemCooccurrence(item=a, other=y, score=0.2, count=1),
            ItemCooccurrence(item=b, other=z, score=0.9, count=5),
            ItemCooccurrence(item=a, other=gone, score=0.9, count=5),
            ItemCooccurrence(item=a, other=b, score=0.9, count=5),  # a seed itself
        ]
    )
    seeds = {a.pk: 1.0, b.pk: 2.0}
    found = cooccurrence.cooccurrence_candidates(seeds, 10, filters.Filters())
    # x: 0.5*1 + 0.4*2 = 1.3, strongest via b (0.8); z: 1.8 via b; y: 0.2 via a.
    assert list(found) == [z.pk, x.pk, y.pk]
    assert found[x.pk] == (pytest.approx(1.3), b.pk)
    assert found[z.pk] == (pytest.approx(1.8), b.pk)
    assert found[y.pk] == (pytest.approx(0.2), a.pk)
    excluded = cooccurrence.cooccurrence_candidates(seeds, 1, filters.Filters(exclude_ids={z.pk}))
    assert list(excluded) == [x.pk]
    Item.objects.filter(pk=y.pk).update(category="tea")
    by_category = cooccurrence.cooccurrence_candidates(seeds, 10, filters.Filters(category="tea"))
    assert list(by_category) == [y.pk]


def test_the_terms_of_each_sum_come_with_the_candidates_and_give_the_anchors_shares(
    space, make_items
):
    from recommender.serving import evidence

    a, b, x, y = make_items(4)
    ItemCooccurrence.objects.bulk_create(
        [
            ItemCooccurrence(item=a, other=x, score=0.5, count=3),
            ItemCooccurrence(item=b, other=x, score=0.4, count=2),
            ItemCooccurrence(item=a, other=y, score=0.2, count=1),
        ]
    )
    seeds = {a.pk: 1.0, b.pk: 2.0}
    parts: dict = {}
    found = cooccurrence.cooccurrence_candidates(seeds, 10, filters.Filters(), parts=parts)
    assert found == cooccurrence.cooccurrence_candidates(seeds, 10, filters.Filters())
    assert parts == {
        x.pk: {a.pk: pytest.approx(0.5), b.pk: pytest.approx(0.8)},
        y.pk: {a.pk: pytest.approx(0.2)},
    }
    shares = evidence.cooccurrence_shares(parts, {b.pk})
    assert shares == {(b.pk, x.pk): pytest.approx(0.8 / 1.3)}  # b gave 0.8 of x's 1.3
    assert evidence.cooccurrence_shares(parts, {a.pk})[(a.pk, y.pk)] == pytest.approx(1.0)
