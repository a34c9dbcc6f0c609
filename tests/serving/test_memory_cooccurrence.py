"""The co-occurrence table read from process memory for a small catalogue
(RECOMMENDER_IN_PROCESS_SEARCH_ITEMS): the same candidates, anchors, features and terms as
the SQL, nothing it may not recommend, and the table read again when it is written."""

from datetime import timedelta

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from recommender.ingest import events
from recommender.models import EndUser, Item, ItemCooccurrence, ItemVector
from recommender.serving import candidates, memory_search
from recommender.serving.cooccurrence import refresh_cooccurrence
from recommender.serving.pipeline import RecommendationRequest

TABLE = ItemCooccurrence._meta.db_table


@pytest.fixture
def shop(space, make_items):
    """30 items with vectors; 14 shoppers whose views, carts and likes make a co-occurrence
    table that also points at an inactive, a hidden and an expired item; and "u0", whose
    history seeds it."""
    items = make_items(30)
    rng = np.random.default_rng(3)
    for item in items:
        ItemVector.objects.create(space=space, item=item, embedding=rng.normal(size=48))
    kinds = ["view", "view", "cart", "like"]
    for shopper in range(14):
        picked = rng.choice(30, size=7, replace=False)
        for position, index in enumerate(picked):
            events.record_event(
                events.EventInput(
                    user=f"s{shopper}", item=items[index].external_id, kind=kinds[position % 4]
                )
            )
    for index, kind in [(0, "view"), (1, "like"), (2, "cart"), (4, "view"), (6, "like")]:
        events.record_event(events.EventInput(user="u0", item=items[index].external_id, kind=kind))
    assert refresh_cooccurrence() > 0
    now = timezone.now()
    for index, fields in {
        10: {"is_active": False},
        11: {"is_hidden": True},
        12: {"available_until": now - timedelta(days=1)},
    }.items():
        Item.objects.filter(pk=items[index].pk).update(**fields)
    return items, EndUser.objects.get(external_id="u0")


def _pool(request, settings, limit):
    """(candidate → sources, co-occurrence feature, anchor), the pool's terms per item,
    and the statements a second call ran."""
    settings.RECOMMENDER_IN_PROCESS_SEARCH_ITEMS = limit
    memory_search._snapshots.clear()
    memory_search._cooccurrences = None
    candidates.candidate_pool(request)  # the table's first read is not counted
    with CaptureQueriesContext(connection) as captured:
        pool = candidates.candidate_pool(request)
    described = {
        c.item_id: (
            frozenset(c.sources),
            c.features.get("cooccurrence", -1.0),
            c.anchor_item_id,
        )
        for c in pool.candidates
    }
    parts = {item: dict(terms) for item, terms in pool.cooccurrence_parts.items()}
    return described, parts, [q["sql"] for q in captured]


def _close(a, b):
    """Equal, floats to a relative 1e-6: seed weights decay between the two calls, so a
    term rounded to fixed digits can land either side of a rounding boundary."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(_close, a, b))
    if isinstance(a, float):
        return a == pytest.approx(b, rel=1e-6, abs=1e-9)
    return a == b


@pytest.mark.parametrize(
    "fields",
    [{}, {"exclude_seen": False}, {"query": "羽绒服 款3"}, {"explain": False}, {"per_source": 4}],
    ids=["explained", "seen-allowed", "intent", "unexplained", "short-head"],
)
def test_the_table_in_memory_gives_the_sqls_candidates(shop, settings, fields):
    items, user = shop
    request = RecommendationRequest(user=user, k=4, **{"per_source": 12, **fields})
    in_sql, sql_parts, sql_statements = _pool(request, settings, 0)
    in_memory, memory_parts, memory_statements = _pool(request, settings, 2000)
    assert any(TABLE in sql for sql in sql_statements)
    assert not any(TABLE in sql for sql in memory_statements), "read in SQL"
    assert _close(in_memory, in_sql), (in_memory, in_sql)
    assert _close(memory_parts, sql_parts), (memory_parts, sql_parts)
    cooccurring = {i for i, (sources, _, _) in in_memory.items() if "co_occurrence" in sources}
    assert cooccurring, "the shop gives no co-occurrence candidate"
    if request.explain:
        assert set(memory_parts) == cooccurring
    never = {items[i].pk for i in (10, 11, 12)}  # inactive, hidden, expired
    assert not never & set(in_memory)
    assert never & set(_pairs(memory_search._cooccurrences).values()), (
        "the table points at none of the items it may not offer"
    )


def _pairs(table) -> dict[tuple[int, int], int]:
    """The table's (item, other) → other, with each score checked against the database."""
    stored = {
        (i, o): s for i, o, s in ItemCooccurrence.objects.values_list("item", "other", "score")
    }
    held = table.pairs()
    assert held == stored
    return {pair: pair[1] for pair in held}


def test_a_refresh_and_a_saved_row_are_read_at_once(shop, settings):
    items, user = shop
    settings.RECOMMENDER_IN_PROCESS_SEARCH_ITEMS = 2000
    request = RecommendationRequest(user=user, k=4, per_source=12)

    def offered():
        pool = candidates.candidate_pool(request)
        return {c.item_id for c in pool.candidates if "co_occurrence" in c.sources}

    before = offered()
    first = memory_search._cooccurrences
    assert first is not None and first.neighbours
    # A new pair through the ORM (the admin, a script): offered in the next request.
    newcomer = next(i for i in items[13:] if i.pk not in before)
    ItemCooccurrence.objects.create(item=items[1], other=newcomer, score=50.0, count=9)
    assert newcomer.pk in offered()
    assert memory_search._cooccurrences is not first
    # A refresh rewrites the table (without the pair above): read again at once.
    second = memory_search._cooccurrences
    refresh_cooccurrence()
    offered()
    assert memory_search._cooccurrences is not second
    assert second.pairs()[(items[1].pk, newcomer.pk)] == 50.0
    assert (items[1].pk, newcomer.pk, 50.0) not in {
        (i, o, s) for (i, o), s in memory_search._cooccurrences.pairs().items()
    }
    _pairs(memory_search._cooccurrences)  # the same as the database's


def test_the_head_sums_terms_breaks_ties_by_id_and_leaves_out_seeds_and_exclusions():
    table = memory_search.Cooccurrences.of(
        None,
        0.0,
        0,
        {
            1: ([5, 6, 7, 2], [0.5, 0.2, 0.4, 0.9]),
            2: ([5, 7, 8], [0.25, 0.6, 0.1]),
            3: ([9], [0.3]),
        },
    )
    head = table.head({1: 1.0, 2: 2.0}, 10, exclude={6})
    # 5: 0.5 + 0.5 (tie between the seeds: the lower id anchors); 7: 0.4 + 1.2; 8: 0.2.
    # Seed 2 is a seed, never a candidate; 6 is excluded; 3 is no seed.
    assert [(item, round(total, 9), anchor) for item, total, anchor, _ in head] == [
        (7, 1.6, 2),
        (5, 1.0, 1),
        (8, 0.2, 2),
    ]
    assert head[0][3] == {2: 1.2, 1: 0.4}
    assert [entry[0] for entry in table.head({1: 1.0, 2: 2.0}, 2, exclude=set())] == [7, 5]
    # Equal sums: the lower id first, as the SQL orders them.
    tied = memory_search.Cooccurrences.of(None, 0.0, 0, {1: ([8, 4], [0.3, 0.3])})
    assert [entry[0] for entry in tied.head({1: 1.0}, 5, set())] == [4, 8]
    assert table.head({42: 1.0}, 5, set()) == []


def test_a_table_too_large_is_read_in_sql(shop, settings, monkeypatch):
    items, user = shop
    settings.RECOMMENDER_IN_PROCESS_SEARCH_ITEMS = 2000
    rows = ItemCooccurrence.objects.count()
    monkeypatch.setattr(memory_search, "COOCCURRENCE_ROWS_PER_ITEM", 0)
    request = RecommendationRequest(user=user, k=4, per_source=12)
    with CaptureQueriesContext(connection) as captured:
        pool = candidates.candidate_pool(request)
    assert rows > 0 and memory_search._cooccurrences.neighbours is None
    assert any(TABLE in q["sql"] and "unnest" in q["sql"] for q in captured)
    assert any("co_occurrence" in c.sources for c in pool.candidates)
