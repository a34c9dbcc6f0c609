"""Explanation fidelity and the similarity threshold, on a small hand-built shop."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from recommender.learning import explanations
from recommender.models import Behaviour, EndUser, Item
from recommender.serving import evidence, profiles
from recommender.serving.pipeline import RecommendationRequest, recommend
from recommender.spaces import embedding


def test_wilson_interval_brackets_the_share():
    low, high = explanations.wilson(90, 100)
    assert low == pytest.approx(0.825, abs=0.005) and high == pytest.approx(0.945, abs=0.005)
    assert explanations.wilson(0, 0) == (0.0, 1.0)
    assert explanations.wilson(10, 10)[1] == 1.0


def test_a_drop_is_leaving_the_top_k_or_falling_more_than_max_shift():
    assert explanations.dropped(0, None, 10, 2)
    assert explanations.dropped(8, 10, 10, 2)
    assert explanations.dropped(0, 3, 10, 2)
    assert not explanations.dropped(0, 2, 10, 2)
    assert not explanations.dropped(4, 1, 10, 2)


@pytest.fixture
def shop(space):
    """Keyboards (the user bought one), scarves (viewed one) and one teacup viewed once:
    the keyboard drives the keyboards in the list, the teacup drives nothing of them."""
    now = timezone.now()
    titles = [f"机械键盘 青轴 背光 款{i}" for i in range(6)]
    titles += [f"羊毛围巾 保暖 冬季 款{i}" for i in range(6)]
    titles += [f"陶瓷茶杯 功夫茶 款{i}" for i in range(6)]
    items = [
        Item.objects.create(external_id=f"sku-{i}", title=title) for i, title in enumerate(titles)
    ]
    embedding.embed_items(space, [item.pk for item in items])
    user = EndUser.objects.create(external_id="u-1")
    keyboard, scarf, teacup = items[0], items[6], items[12]
    for item, kind, hours in ((keyboard, "purchase", 1), (scarf, "view", 2), (teacup, "view", 30)):
        Behaviour.objects.create(
            user=user, item=item, kind=kind, occurred_at=now - timedelta(hours=hours)
        )
    profiles.rebuild([user.pk], space)
    return user, items


def test_the_anchor_that_drives_an_item_makes_it_drop_and_a_fake_one_does_not(shop):
    user, items = shop
    keyboard, teacup = items[0], items[12]
    listed = [r.item.pk for r in recommend(RecommendationRequest(user=user, k=3, explain=False))]
    other_keyboards = {item.pk for item in items[1:6]}
    assert set(listed) <= other_keyboards  # the bought keyboard leads the list
    item = listed[0]
    without_keyboard = explanations.ranked_without(user, keyboard.pk, depth=10)
    without_teacup = explanations.ranked_without(user, teacup.pk, depth=10)
    position = lambda ranked: ranked.index(item) if item in ranked else None  # noqa: E731
    assert explanations.dropped(0, position(without_keyboard), 3, 2)
    assert not explanations.dropped(0, position(without_teacup), 3, 2)
    # Forgetting is per request: the stored profile and the history are untouched.
    assert keyboard.pk not in without_keyboard and teacup.pk not in without_teacup
    assert Behaviour.objects.filter(user=user).count() == 3


def test_fidelity_counts_the_reasons_that_name_an_anchor(shop, settings):
    user, _ = shop
    settings.RECOMMENDER_EXPLAIN_MIN_SIMILARITY = 0.3
    report = explanations.fidelity([user], k=3, lang="en")
    assert report.users == 1 and report.items == 3
    assert report.cases, "the keyboards are explained by the bought keyboard"
    assert all(case.anchor == "sku-0" for case in report.cases)
    assert all(case.dropped for case in report.cases)
    table = report.by_type()
    assert table["all"]["share"] == 1.0 and table["all"]["n"] == len(report.cases)
    assert "| history |" in explanations.format_report(report)


def test_calibration_is_a_quantile_of_random_pairs_and_serving_reads_it(
    shop, space, settings, tmp_path
):
    settings.RECSITE_DATA_DIR = tmp_path
    result = explanations.calibrate(space, quantile=0.9)
    assert result.random_pairs > 1000 and result.next_pairs == 2
    assert result.random_median < result.threshold <= 1.0
    path = explanations.save_calibration(result)
    assert path == tmp_path / "models" / "explain" / "fast.json"
    assert json.loads(path.read_text())["threshold"] == result.threshold
    assert evidence.min_similarity(space) == result.threshold
    # A file written for another encoder under the same name is not used.
    path.write_text(json.dumps({**result.to_json(), "dim": 7}))
    settings.RECOMMENDER_EXPLAIN_MIN_SIMILARITY = 0.77
    assert evidence.min_similarity(space) == 0.77


def test_calibrate_explanations_command_writes_the_file(shop, settings, tmp_path):
    from django.core.management import call_command

    settings.RECSITE_DATA_DIR = tmp_path
    call_command("calibrate_explanations", "--quantile", "0.95")
    assert (tmp_path / "models" / "explain" / "fast.json").exists()
