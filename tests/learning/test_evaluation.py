"""Offline evaluation protocols and metrics, the learned ranker, the evaluate command."""

import json
import random
from collections import Counter
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from recommender import spaces
from recommender.learning import evaluation, ranker
from recommender.models import Behaviour, EndUser, EvaluationRun, Item, ItemCooccurrence
from recommender.serving import cooccurrence, learned, profiles, ranking
from recommender.spaces import embedding

pytestmark = pytest.mark.django_db

TOPICS = {
    "tea": ["绿茶", "红茶", "乌龙茶", "普洱茶", "白茶", "花茶", "茶具", "茶叶礼盒"],
    "keyboard": [
        "机械键盘",
        "键帽",
        "青轴键盘",
        "红轴键盘",
        "静音键盘",
        "无线键盘",
        "腕托",
        "键盘包",
    ],
    "jacket": ["羽绒服", "夹克外套", "风衣", "冲锋衣", "棉服", "皮衣", "毛呢大衣", "马甲"],
    "book": ["小说", "散文集", "诗集", "历史书", "编程书", "漫画", "童话书", "词典"],
}


@pytest.fixture
def shop(settings):
    """Four topics; each user sticks to one topic, in time order."""
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    items = {}
    for topic, names in TOPICS.items():
        items[topic] = [
            Item.objects.create(
                external_id=f"{topic}-{n}", title=name, category=topic, tags=[topic]
            )
            for n, name in enumerate(names)
        ]
    space = spaces.create_space("eval", "hashing", {"dim": 128}, activate=True)
    embedding.embed_items(space, list(Item.objects.values_list("pk", flat=True)))
    rng = random.Random(3)
    start = timezone.now() - timedelta(days=20)
    for u in range(24):
        topic = list(TOPICS)[u % 4]
        user = EndUser.objects.create(external_id=f"user-{u}")
        picks = rng.sample(items[topic], 6)
        for step, item in enumerate(picks):
            Behaviour.objects.create(
                user=user, item=item, kind="view", occurred_at=start + timedelta(hours=u + step)
            )
    return items


def test_ranking_metrics_by_hand():
    metrics = evaluation.ranking_metrics([5, 7, 9, 11], {7, 42}, k=4)
    assert metrics["precision"] == 0.25
    assert metrics["recall"] == 0.5
    assert metrics["hit_rate"] == 1.0
    assert metrics["mrr"] == 0.5
    ideal = 1 + 1 / np.log2(3)
    assert metrics["ndcg"] == pytest.approx((1 / np.log2(3)) / ideal)
    assert evaluation.ranking_metrics([1, 2], {3}, k=2)["ndcg"] == 0.0


def test_leave_one_out_holds_out_each_users_last_engagement(shop):
    cases = evaluation.leave_one_out(max_users=None)
    assert len(cases) == 24
    for case in cases:
        last = Behaviour.objects.filter(user_id=case.user_id).order_by("-occurred_at").first()
        assert case.targets == {last.item_id} and case.as_of == last.occurred_at
    earlier = {c.user_id: c for c in evaluation.leave_one_out(max_users=None, offset=1)}
    assert all(earlier[c.user_id].as_of < c.as_of for c in cases)


def test_as_of_profiles_do_not_see_the_held_out_event(shop):
    case = evaluation.leave_one_out(max_users=None)[0]
    space = spaces.active_space()
    before = profiles.recompute(case.user_id, space, as_of=case.as_of)
    everything = profiles.recompute(case.user_id, space)
    assert before.events == everything.events - 1


def test_evaluation_reports_every_baseline_and_leaves_the_site_unchanged(shop):
    cooccurrence.refresh_cooccurrence()
    pairs = sorted(ItemCooccurrence.objects.values_list("item_id", "other_id", "score"))
    cases = evaluation.leave_one_out(max_users=None)
    report = evaluation.evaluate(cases, protocol="loo", ks=[5, 10])
    assert set(report.overall) == {"popular", "co-occurrence", "text", "recent-text", "full"}
    for values in report.overall.values():
        for name in ("precision", "recall", "f1", "ndcg", "mrr", "hit_rate", "coverage"):
            assert 0.0 <= values[f"{name}@10"] <= 1.0
        assert values["novelty@10"] > 0 and values["lists"] == 24
    # Users stick to one topic, so anything using their history beats popularity here.
    assert report.overall["text"]["hit_rate@10"] > report.overall["popular"]["hit_rate@10"]
    assert sorted(ItemCooccurrence.objects.values_list("item_id", "other_id", "score")) == pairs


def test_evaluate_command_writes_table_json_charts_and_a_run(shop, tmp_path, capsys):
    out = tmp_path / "report"
    call_command("evaluate", "--k", "5", "10", "--out", str(out), "--no-progress")
    text = capsys.readouterr().out
    assert "ndcg@10" in text and "full" in text and "popular" in text
    data = json.loads((out / "report.json").read_text())
    assert data["cases"] == 24 and "ndcg@5" in data["overall"]["full"]
    assert (out / "accuracy.png").stat().st_size > 1000
    run = EvaluationRun.objects.get()
    assert run.headline()["full"] == data["overall"]["full"]["ndcg@10"]


def test_temporal_split_and_bad_dates(shop, capsys):
    cut = Behaviour.objects.order_by("occurred_at")[60].occurred_at
    cases = evaluation.temporal_split(cut, max_users=None)
    assert cases and all(case.as_of == cut for case in cases)
    with pytest.raises(CommandError, match="not a date"):
        call_command("evaluate", "--before", "2023-13-45")


def test_learned_ranker_trains_saves_and_serves(shop, settings, tmp_path, capsys):
    settings.RECSITE_DATA_DIR = tmp_path
    settings.RECOMMENDER_USE_LEARNED_RANKER = True
    assert learned.load_latest_scorer() is None
    call_command("train_ranker", "--kind", "fm", "--epochs", "60", "--no-progress", "--force")
    out = capsys.readouterr().out
    assert "epoch    0" in out and "saved" in out
    scorer = learned.load_latest_scorer()
    assert scorer is not None and Path(scorer.path).parent == tmp_path / "models" / "ranker"
    assert ranking.current_scorer() is scorer
    matrix = np.random.default_rng(0).random((5, len(ranking.FEATURES))).astype(np.float32)
    restored = learned.LearnedScorer.from_json(scorer.to_json())
    assert np.allclose(restored.score(matrix), scorer.score(matrix))


def test_factorization_machine_scores_pairwise_interactions():
    features = np.random.default_rng(1).random((200, len(ranking.FEATURES))).astype(np.float32)
    labels = (features[:, 0] * features[:, 1] > 0.3).astype(np.float32)
    groups = np.arange(200) // 10
    scorer, train_loss, val_loss = ranker.train(features, labels, groups, kind="fm", epochs=80)
    assert scorer.factors is not None and scorer.factors.shape[0] == len(ranking.FEATURES)
    assert train_loss[-1] < train_loss[0]
    assert scorer.score(features).shape == (200,)


def test_train_ranker_without_data_fails_clearly(settings, tmp_path):
    settings.RECSITE_DATA_DIR = tmp_path
    with pytest.raises(CommandError, match="not enough training data"):
        call_command("train_ranker", "--no-progress")


def test_evaluate_only_some_recommenders(shop, tmp_path, capsys):
    call_command(
        "evaluate",
        "--recommenders",
        "text,popular",
        "--out",
        str(tmp_path),
        "--no-progress",
        "--no-charts",
    )
    data = json.loads((tmp_path / "report.json").read_text())
    assert set(data["overall"]) == {"text", "popular"}
    with pytest.raises(CommandError, match="unknown recommender 'nope'"):
        call_command("evaluate", "--recommenders", "nope")
    with pytest.raises(CommandError, match="'full\\+learned' cannot run here"):
        call_command("evaluate", "--only", "full+learned")  # no ranker trained


def test_max_users_zero_evaluates_every_eligible_user(shop, tmp_path):
    # One more user with a single event: nothing to train on before it, so not a case.
    lone = EndUser.objects.create(external_id="lone")
    Behaviour.objects.create(user=lone, item=shop["tea"][0], kind="view")
    events = Counter(Behaviour.objects.values_list("user_id", flat=True))
    eligible = sorted(user for user, count in events.items() if count >= 2)
    call_command(
        "evaluate", "--max-users", "0", "--out", str(tmp_path), "--no-progress", "--no-charts"
    )
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["user_ids"] == eligible and len(eligible) == 24
    assert data["cases"] == 24 and data["overall"]["full"]["lists"] == 24
    assert len(evaluation.split("test", max_users=5)) == 5


def test_map_by_hand():
    # Hits at ranks 2 and 4 of two targets: (1/2 + 2/4) / 2.
    assert evaluation.ranking_metrics([5, 7, 9, 42], {7, 42}, k=4)["map"] == pytest.approx(0.5)
    # One target: average precision is the reciprocal rank.
    assert evaluation.ranking_metrics([5, 7], {7}, k=2)["map"] == 0.5
    assert evaluation.ranking_metrics([5, 7], {8}, k=2)["map"] == 0.0


def test_validation_split_holds_out_the_second_to_last_and_hides_the_last(shop):
    test = {case.user_id: case for case in evaluation.split("test")}
    validation = evaluation.split("validation")
    assert len(validation) == 24
    for case in validation:
        events = list(Behaviour.objects.filter(user_id=case.user_id).order_by("-occurred_at"))
        assert case.targets == {events[1].item_id} and case.as_of == events[1].occurred_at
        assert case.held_out_events == [events[1].pk]
        assert case.later_events == [events[0].pk] == test[case.user_id].held_out_events
    with pytest.raises(ValueError, match="unknown split 'train'"):
        evaluation.split("train")


def test_evaluate_validation_split_reports_its_split(shop, tmp_path, capsys):
    call_command(
        "evaluate", "--split", "validation", "--out", str(tmp_path), "--no-progress", "--no-charts"
    )
    assert "leave-one-out by time, validation split: 24 cases" in capsys.readouterr().out
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["split"] == "validation"
    assert EvaluationRun.objects.get().params["split"] == "validation"
    with pytest.raises(CommandError, match="--before is a temporal split"):
        call_command("evaluate", "--split", "validation", "--before", "2024-01-01")


def test_intervals_in_the_table_the_json_and_the_run(shop, tmp_path, capsys):
    call_command(
        "evaluate", "--reference", "popular", "--out", str(tmp_path), "--no-progress", "--no-charts"
    )
    text = capsys.readouterr().out
    assert "95% bootstrap intervals over 24 users (1000 resamples, seed 0)" in text
    assert "against popular (named)" in text and "(reference)" in text
    comparison = json.loads((tmp_path / "report.json").read_text())["comparison"]
    assert comparison["reference"] == "popular"
    assert comparison["metrics"] == ["ndcg@10", "recall@10"]
    for name in ("popular", "co-occurrence", "text", "full"):
        own = comparison["means"][name]["ndcg@10"]
        assert own["low"] <= own["estimate"] <= own["high"]
    assert comparison["differences"]["popular"]["ndcg@10"] == {
        "estimate": 0.0,
        "low": 0.0,
        "high": 0.0,
    }
    stored = EvaluationRun.objects.get().metrics
    assert stored["intervals"] == comparison and "map@10" in stored["overall"]["full"]
    with pytest.raises(CommandError, match="--reference: 'nope' is not evaluated"):
        call_command("evaluate", "--reference", "nope", "--no-progress")


def test_best_recommender_is_the_default_reference(shop):
    cases = evaluation.split("test")
    report = evaluation.evaluate(cases, protocol="loo")
    best = max(report.overall, key=lambda name: report.overall[name]["ndcg@10"])
    assert report.comparison.reference == best
    assert report.comparison.reference_rule == "best ndcg@10"


def test_registered_recommenders_are_evaluated_by_name(shop, monkeypatch, tmp_path):
    monkeypatch.setattr(evaluation, "_REGISTRY", dict(evaluation._REGISTRY))

    def most_recent_topic(case, k):
        """A behaviour model in miniature: the user's last item's topic, unseen items."""
        seen = Behaviour.objects.filter(user_id=case.user_id, occurred_at__lt=case.as_of)
        last = seen.order_by("-occurred_at").first().item
        ranked = Item.objects.filter(category=last.category).exclude(pk__in=seen.values("item_id"))
        return list(ranked.order_by("pk").values_list("pk", flat=True)[:k])

    fitted = []

    @evaluation.register("same-topic", default=False, description="the last item's topic")
    def _same_topic():
        return evaluation.Recommender("same-topic", rank=most_recent_topic, fit=fitted.append)

    assert "same-topic" in evaluation.registered()
    assert "same-topic" not in {r.name for r in evaluation.recommenders()}
    call_command(
        "evaluate",
        "--recommenders",
        "popular,same-topic",
        "--out",
        str(tmp_path),
        "--no-progress",
        "--no-charts",
    )
    data = json.loads((tmp_path / "report.json").read_text())
    assert list(data["overall"]) == ["popular", "same-topic"] and len(fitted[0]) == 24
    # Users stick to one topic: the topic's unseen items hold the next one.
    assert data["overall"]["same-topic"]["hit_rate@10"] == 1.0


def test_old_runs_without_map_or_intervals_still_show(shop, admin_client):
    from recommender.dashboard.queries import latest_evaluation

    EvaluationRun.objects.create(
        protocol="leave-one-out by time",
        cases=3,
        metrics={"overall": {"full": {"ndcg@10": 0.1, "mrr@10": 0.2}}, "cold_start": {}},
    )
    summary = latest_evaluation()
    assert summary.columns == ["ndcg@10", "mrr@10"]
    assert EvaluationRun.objects.get().headline() == {"full": 0.1}
