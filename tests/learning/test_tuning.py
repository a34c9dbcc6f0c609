"""Tuning the blend's weights on the validation split (learning.tuning, manage.py tune)."""

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from recommender.learning import evaluation, tuning
from recommender.models import Scenario
from tests.learning.test_evaluation import shop  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

# Defaults that ignore what predicts this shop (each user sticks to one topic): the
# profile similarity, co-occurrence and category affinity get no weight.
POOR_DEFAULTS = {"similarity": 0.0, "cooccurrence": 0.0, "category_affinity": 0.0}


def test_replayed_pools_rank_exactly_as_the_full_pipeline(shop):  # noqa: F811
    cases = evaluation.split("validation")
    pools = tuning.build_pools(cases)
    replayed = pools.ndcg(tuning._vector(tuning.default_weights()))
    report = evaluation.evaluate(
        cases, protocol="validation", recommenders=evaluation.recommenders(["full"])
    )
    assert replayed.tolist() == pytest.approx(report.per_list["full"]["ndcg@10"])
    assert pools.user_ids == report.user_ids


def test_replay_ndcg_by_hand_keeps_pool_order_on_ties():
    # Case 0: three candidates, the target (row 1) ties with row 0 and comes after it.
    # Case 1: two targets of two candidates, both in the pool. Case 2: empty pool.
    features = np.zeros((5, len(tuning.FEATURES)), np.float32)
    features[:, 0] = [1.0, 1.0, 0.5, 0.2, 0.9]
    pools = tuning.Pools(
        features=features,
        starts=np.array([0, 3, 5, 5]),
        pair_case=np.array([0, 1, 1]),
        pair_row=np.array([1, 3, 4]),
        ideal=np.array([1.0, 1 + 1 / np.log2(3), 1.0]),
        k=10,
    )
    weights = np.zeros(len(tuning.FEATURES), np.float32)
    weights[0] = 1.0
    assert pools.ndcg(weights) == pytest.approx([1 / np.log2(3), 1.0, 0.0])
    assert pools.varying() == [tuning.FEATURES[0]]


def test_tune_dry_run_prints_and_stores_nothing(shop, settings, capsys):  # noqa: F811
    settings.RECOMMENDER_BLEND_WEIGHTS = POOR_DEFAULTS
    call_command("tune", "--trials", "40", "--dry-run", "--no-progress")
    out = capsys.readouterr().out
    assert "validation NDCG@10: defaults" in out and "best - defaults" in out
    assert "not stored (--dry-run)" in out
    assert not Scenario.objects.exists()


def test_tune_stores_weights_that_beat_the_defaults(shop, settings, capsys):  # noqa: F811
    settings.RECOMMENDER_BLEND_WEIGHTS = POOR_DEFAULTS
    cases = evaluation.split("validation")
    result = tuning.search(tuning.build_pools(cases), trials=40)
    assert result.best_ndcg > result.default_ndcg and result.improvement.low > 0
    call_command("tune", "--trials", "40", "--require-interval", "--no-progress")
    assert "stored as the blend weights of scenario 'default'" in capsys.readouterr().out
    scenario = Scenario.objects.get(is_default=True)
    assert scenario.blend_weights == pytest.approx(result.best)
    # Stored weights serve: evaluate's full+scenario ranks with them, and beats "full"
    # (the poor defaults) on the validation split it was tuned on.
    report = evaluation.evaluate(
        cases,
        protocol="validation",
        recommenders=evaluation.recommenders(["full", "full+scenario"]),
    )
    assert report.overall["full+scenario"]["ndcg@10"] == pytest.approx(result.best_ndcg)
    # Run again: the scenario already holds the best weights, nothing changes.
    call_command("tune", "--trials", "40", "--no-progress")
    assert "already has the best weights" in capsys.readouterr().out


def test_tune_keeps_the_defaults_when_nothing_beats_them(shop, capsys):  # noqa: F811
    call_command("tune", "--trials", "1", "--no-progress")
    assert "not stored: no weights beat the defaults" in capsys.readouterr().out
    assert not Scenario.objects.exists()


def test_tune_searches_the_validation_split_only(shop):  # noqa: F811
    test = {case.user_id: case for case in evaluation.split("test")}
    for case in evaluation.split("validation"):
        assert case.as_of < test[case.user_id].as_of
        assert set(test[case.user_id].held_out_events) <= set(case.excluded_events)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--trials", "0"], "--trials must be at least 1"),
        (["--max-users", "-1"], "--max-users must be at least 0"),
        (["--spread", "0"], "--spread must be more than 0"),
    ],
)
def test_tune_rejects_bad_arguments_in_one_line(shop, arguments, message):  # noqa: F811
    with pytest.raises(CommandError, match=message):
        call_command("tune", *arguments, "--no-progress")


def test_tune_without_validation_cases_fails_clearly():
    with pytest.raises(CommandError, match="nothing to tune on"):
        call_command("tune", "--no-progress")
