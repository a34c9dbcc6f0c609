"""``evidence._read_proofs`` reads the qualifying pairs first and matches their shoppers in
Python; it must answer exactly what the single join it replaced answered (kept here as the
reference), on random shops: counts under and over the minimum, pairs without a stored
count or without a shopper behind both items, ratings below the positive threshold, kinds
that do not count, clicks read as views, and a replay of the past."""

import random
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from recommender import behaviour
from recommender.models import Behaviour, EndUser, ItemCooccurrence
from recommender.serving import evidence

KINDS = ("view", "click", "cart", "purchase", "like", "share", "rating", "dislike", "impression")


def _reference(pairs, as_of, min_count) -> dict:
    """The join ``_read_proofs`` used before: every anchor event against every item event."""
    sql = f"""
        WITH p AS (SELECT * FROM unnest(%(anchors)s::bigint[], %(items)s::bigint[])
                   AS p(anchor, item)),
        ev AS (
            SELECT user_id, item_id, kind FROM {Behaviour._meta.db_table}
            WHERE item_id = ANY(%(ids)s) AND kind = ANY(%(kinds)s)
              AND (%(as_of)s::timestamptz IS NULL OR occurred_at < %(as_of)s::timestamptz)
              AND (kind <> 'rating' OR value IS NULL OR value >= %(min_rating)s)
        )
        SELECT p.anchor, p.item, c.count, a.user_id,
               array_agg(DISTINCT a.kind), array_agg(DISTINCT b.kind)
        FROM p
        JOIN {ItemCooccurrence._meta.db_table} c ON c.item_id = p.anchor AND c.other_id = p.item
             AND c.count >= %(min_count)s
        JOIN ev a ON a.item_id = p.anchor
        JOIN ev b ON b.item_id = p.item AND b.user_id = a.user_id
        GROUP BY p.anchor, p.item, c.count, a.user_id
    """
    params = {
        "anchors": [a for a, _ in pairs],
        "items": [i for _, i in pairs],
        "ids": list({i for pair in pairs for i in pair}),
        "kinds": list(behaviour.ENGAGED),
        "as_of": as_of,
        "min_rating": behaviour.positive_rating(),
        "min_count": min_count,
    }
    same = {"click": "view"}
    found: dict = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for anchor, item, count, _, on_anchor, on_item in cursor.fetchall():
            entry = found.setdefault((anchor, item), (int(count), [], []))
            entry[1].append({same.get(k, k) for k in on_anchor})
            entry[2].append({same.get(k, k) for k in on_item})
    return {
        pair: evidence.CooccurrenceProof(
            count, evidence._common_kind(anchors), evidence._common_kind(items)
        )
        for pair, (count, anchors, items) in found.items()
    }


@pytest.mark.parametrize("seed", range(6))
def test_the_read_answers_as_the_join_it_replaced(make_items, seed):
    rng = random.Random(seed)
    items = make_items(12)
    users = [EndUser.objects.create(external_id=f"u-{n}") for n in range(15)]
    now = timezone.now()
    events = []
    for user in users:
        for item in rng.sample(items, rng.randint(1, 6)):
            for _ in range(rng.randint(1, 3)):
                kind = rng.choice(KINDS)
                events.append(
                    Behaviour(
                        user=user,
                        item=item,
                        kind=kind,
                        value=rng.choice([1.0, 2.0, 4.0, 5.0, None]) if kind == "rating" else None,
                        occurred_at=now - timedelta(hours=rng.randint(0, 48)),
                    )
                )
    Behaviour.objects.bulk_create(events)
    stored = rng.sample([(a, b) for a in items for b in items if a != b], 60)
    ItemCooccurrence.objects.bulk_create(
        ItemCooccurrence(item=a, other=b, score=rng.random(), count=rng.randint(1, 6))
        for a, b in stored
    )
    pairs = [(a.pk, b.pk) for a, b in rng.sample(stored, 30)]
    pairs += [(a.pk, b.pk) for a, b in rng.sample([(a, b) for a in items for b in items], 20)]
    pairs = list(dict.fromkeys(pairs))
    asked = 0
    for as_of in (None, now - timedelta(hours=20)):
        for min_count in (0, 3, 5):
            expected = _reference(pairs, as_of, min_count)
            assert evidence._read_proofs(pairs, as_of, min_count) == expected
            asked += len(expected)
    assert asked > 10  # the shops are not empty of proofs


def test_a_pair_without_a_shopper_behind_both_items_has_no_proof(make_items):
    anchor, item = make_items(2)
    first, second = (EndUser.objects.create(external_id=f"u-{n}") for n in range(2))
    now = timezone.now()
    Behaviour.objects.create(user=first, item=anchor, kind="view", occurred_at=now)
    Behaviour.objects.create(user=second, item=item, kind="view", occurred_at=now)
    Behaviour.objects.create(user=second, item=anchor, kind="dislike", occurred_at=now)
    ItemCooccurrence.objects.create(item=anchor, other=item, score=0.5, count=4)
    assert evidence._read_proofs([(anchor.pk, item.pk)], None, 0) == {}
    Behaviour.objects.create(user=first, item=item, kind="click", occurred_at=now)
    assert evidence._read_proofs([(anchor.pk, item.pk)], None, 0) == {
        (anchor.pk, item.pk): evidence.CooccurrenceProof(4, "view", "view")
    }
