"""Online metrics per variant, source and position, and the coverage of what was shown,
against figures counted by hand on a small log (tests/learning/online_log.py)."""

import pytest

from recommender.learning import online_metrics
from recommender.learning.online_metrics import wilson
from tests.learning import online_log

pytestmark = pytest.mark.django_db


@pytest.fixture
def log(settings, make_items):
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    return online_log.build(make_items)


def counts(row) -> tuple:
    return (row.shown, row.impressions, row.clicks, row.carts, row.purchases)


def test_variants_split_each_scenario(log):
    rows = {(r.scenario, r.variant): r for r in online_metrics.variants(7)}
    assert set(rows) == {("home", "a"), ("home", "b"), ("cart", ""), ("empty", "")}
    a, b, cart = rows[("home", "a")], rows[("home", "b")], rows[("cart", "")]
    assert (a.lists, *counts(a)) == (1, 3, 3, 2, 0, 1)  # the old list is outside the window
    assert a.ctr.value == pytest.approx(2 / 3) and (a.ctr.low, a.ctr.high) == wilson(2, 3)
    assert a.conversion.value == pytest.approx(1 / 2)
    assert (b.lists, *counts(b)) == (1, 2, 2, 1, 0, 0) and b.ctr.value == pytest.approx(1 / 2)
    # No impression reported: clicks per item shown (the click at position 9 included).
    assert (cart.lists, *counts(cart)) == (1, 2, 0, 1, 0, 0) and cart.ctr.value == 0.5
    assert rows[("empty", "")].lists == 1 and rows[("empty", "")].shown == 0
    only = online_metrics.variants(7, scenario="home")
    assert [(r.scenario, r.variant) for r in only] == [("home", "a"), ("home", "b")]
    assert {r.variant: r.lists for r in online_metrics.variants(31, scenario="home")} == {
        "a": 2,
        "b": 1,
    }


def test_an_item_with_two_sources_counts_for_each(log):
    rows = {r.source: r for r in online_metrics.sources(7)}
    assert set(rows) == {"popular", "history", "vector", ""}
    # sku-0 in L1 is history and popular: its impression, click and purchase count for both.
    assert counts(rows["popular"]) == (4, 3, 2, 0, 1)  # L1 1-2, L2 2, L3 2 shown
    assert counts(rows["history"]) == (1, 1, 1, 0, 1)
    assert counts(rows["vector"]) == (2, 2, 1, 0, 0)  # L1 3, L2 1
    assert counts(rows[""]) == (1, 0, 0, 0, 0)  # sku-4 in L3; the click at 9 is nowhere
    assert rows["popular"].ctr.value == pytest.approx(2 / 3)
    assert (rows["popular"].ctr.low, rows["popular"].ctr.high) == wilson(2, 3)
    assert rows["history"].ctr.value == 1.0 and rows["vector"].ctr.value == 0.5
    assert rows["history"].conversion.value == 1.0
    assert [r.source for r in online_metrics.sources(7)] == ["popular", "vector", "", "history"]
    home = {r.source: r for r in online_metrics.sources(7, scenario="home")}
    assert set(home) == {"popular", "history", "vector"}
    assert counts(home["popular"]) == (3, 3, 2, 0, 1)


def test_the_position_curve(log):
    curve = online_metrics.position_curve(7)
    assert [r.position for r in curve] == [1, 2, 3]
    assert [counts(r) for r in curve] == [(3, 2, 1, 0, 1), (3, 2, 1, 0, 0), (1, 1, 1, 0, 0)]
    assert [r.ctr.value for r in curve] == [0.5, 0.5, 1.0]
    assert (curve[0].ctr.low, curve[0].ctr.high) == wilson(1, 2)
    assert [r.shown for r in online_metrics.position_curve(7, scenario="cart")] == [1, 1]
    assert online_metrics.position_curve(7, scenario="nowhere") == []


def test_coverage_of_what_was_shown(log):
    rows = {r.scenario: r for r in online_metrics.coverage(7)}
    home, cart, empty = rows["home"], rows["cart"], rows["empty"]
    assert (home.lists, home.items_shown, home.active_items_shown, home.active_items) == (
        2,
        4,
        4,
        5,
    )
    assert home.coverage == pytest.approx(4 / 5)
    # sku-5 is shown but inactive: it counts as shown, not towards the coverage.
    assert (cart.items_shown, cart.active_items_shown, cart.coverage) == (2, 1, 0.2)
    assert (empty.lists, empty.items_shown, empty.coverage) == (1, 0, 0.0)
    assert [r.scenario for r in online_metrics.coverage(7, scenario="cart")] == ["cart"]


def test_scenario_days_restricted_to_one_scenario(log):
    rows = online_metrics.scenario_days(7, scenario="home")
    assert [(r.scenario, r.lists, r.clicks, r.purchases) for r in rows] == [("home", 2, 3, 1)]
    assert {r.scenario for r in online_metrics.scenario_days(7)} == {"home", "cart", "empty"}


def test_an_event_at_no_position_of_its_list_counts_in_the_totals_only(log):
    from recommender.models import Behaviour, EndUser, Item

    before = ([counts(r) for r in online_metrics.position_curve(7)], online_metrics.sources(7))
    user, item = EndUser.objects.get(external_id="alice"), Item.objects.get(external_id="sku-3")
    Behaviour.objects.bulk_create(
        [
            # Position 0 (not the last entry, as a negative index would be) and an item
            # that is not in the list, without a position.
            Behaviour(user=user, item=item, kind="click", recommendation_id=log["L1"], position=0),
            Behaviour(user=user, item=item, kind="click", recommendation_id=log["L1"]),
        ]
    )
    after = ([counts(r) for r in online_metrics.position_curve(7)], online_metrics.sources(7))
    assert after == before
    home_a = next(r for r in online_metrics.variants(7) if r.variant == "a")
    assert home_a.clicks == 4
