"""Offline evaluation protocols and metrics, the learned ranker, the evaluate command."""

import json
import random
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
    assert set(report.overall) == {"popular", "co-occurrence", "text", "full"}
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
    call_command("train_ranker", "--epochs", "60", "--no-progress")
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
        "evaluate", "--only", "text,popular", "--out", str(tmp_path), "--no-progress", "--no-charts"
    )
    data = json.loads((tmp_path / "report.json").read_text())
    assert set(data["overall"]) == {"text", "popular"}
    with pytest.raises(CommandError, match="unknown 'nope'"):
        call_command("evaluate", "--only", "nope")
