"""The learned ranker's training cases, pairwise loss and command options, on a small shop."""

import re
from datetime import timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from recommender.learning import evaluation, ranker
from recommender.models import Behaviour, EndUser, Item
from recommender.serving import learned
from recommender.serving.ranking import CONTEXT_FEATURES, DEFAULT_WEIGHTS, FEATURES, BlendScorer
from recommender.spaces import embedding

TOPICS = {
    "tea": ["绿茶", "红茶", "乌龙茶", "普洱茶", "白茶", "花茶"],
    "keyboard": ["机械键盘", "键帽", "青轴键盘", "红轴键盘", "静音键盘", "无线键盘"],
    "jacket": ["羽绒服", "夹克外套", "风衣", "冲锋衣", "棉服", "皮衣"],
}
COLUMN = {name: index for index, name in enumerate(FEATURES)}


@pytest.fixture
def shop(db, settings, tmp_path, hashing_space):
    """Three topics; each user views five items of one topic, an hour apart."""
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    settings.RECSITE_DATA_DIR = tmp_path
    items = {
        topic: [
            Item.objects.create(external_id=f"{topic}-{n}", title=name, category=topic)
            for n, name in enumerate(names)
        ]
        for topic, names in TOPICS.items()
    }
    embedding.embed_items(hashing_space, list(Item.objects.values_list("pk", flat=True)))
    start = timezone.now() - timedelta(days=10)
    for u in range(12):
        topic = list(TOPICS)[u % 3]
        user = EndUser.objects.create(external_id=f"user-{u}")
        for step in range(5):
            Behaviour.objects.create(
                user=user,
                item=items[topic][(u + step) % 6],
                kind="view",
                occurred_at=start + timedelta(hours=10 * u + step),
            )
    return items


def synthetic_pools(seed: int, pools: int = 60, size: int = 30):
    """Pools in which the engaged item is the most popular one; query similarity is 0."""
    rng = np.random.default_rng(seed)
    features = rng.random((pools * size, len(FEATURES))).astype(np.float32)
    features[:, COLUMN["query_similarity"]] = 0.0
    groups = np.repeat(np.arange(pools), size)
    labels = np.zeros(pools * size, np.float32)
    for pool in range(pools):
        rows = np.flatnonzero(groups == pool)
        labels[rows[np.argmax(features[rows, COLUMN["popularity"]])]] = 1.0
    return features, labels, groups


def top1_accuracy(scores, labels, groups) -> float:
    pools = np.unique(groups)
    hits = [labels[np.flatnonzero(groups == g)][np.argmax(scores[groups == g])] for g in pools]
    return float(np.mean(hits))


def test_ranking_pairs_pair_each_engaged_item_with_the_rest_of_its_pool():
    labels = np.array([1, 0, 0, 0, 1, 1], np.float32)
    groups = np.array([0, 0, 0, 1, 1, 2])
    positives, negatives = ranker.ranking_pairs(labels, groups)
    assert sorted(zip(positives.tolist(), negatives.tolist(), strict=True)) == [
        (0, 1),
        (0, 2),
        (4, 3),
    ]


def test_pairwise_ranker_learns_what_the_blend_misses_and_keeps_unseen_weights():
    features, labels, groups = synthetic_pools(0)
    scorer, train_loss, val_loss = ranker.train(
        features, labels, groups, loss="pairwise", epochs=150
    )
    assert scorer.loss == "pairwise"
    assert train_loss[-1] < train_loss[0] and val_loss[-1] < val_loss[0]
    # Never exercised in training: the blend's weight stays, so search intent still counts.
    assert scorer.weights[COLUMN["query_similarity"]] == pytest.approx(
        DEFAULT_WEIGHTS["query_similarity"]
    )
    assert scorer.weights[COLUMN["popularity"]] > DEFAULT_WEIGHTS["popularity"]
    test_features, test_labels, test_groups = synthetic_pools(1)
    learned = top1_accuracy(scorer.score(test_features), test_labels, test_groups)
    blend = top1_accuracy(BlendScorer().score(test_features), test_labels, test_groups)
    assert learned > blend


def test_pairwise_factorization_machine_round_trips_with_its_loss():
    features, labels, groups = synthetic_pools(2)
    scorer, _, _ = ranker.train(features, labels, groups, kind="fm", loss="pairwise", epochs=20)
    restored = learned.LearnedScorer.from_json(scorer.to_json())
    assert restored.loss == "pairwise" and restored.factors is not None
    # query_similarity is 0 throughout training: it may not take part in any interaction.
    assert not restored.factors[COLUMN["query_similarity"]].any()
    assert restored.factors[COLUMN["popularity"]].any()
    assert np.allclose(restored.score(features), scorer.score(features))


def test_an_unknown_loss_is_an_error():
    features, labels, groups = synthetic_pools(3, pools=4)
    with pytest.raises(ValueError, match="pointwise, pairwise"):
        ranker.train(features, labels, groups, loss="listwise")


def test_training_cases_go_back_several_engagements_but_never_to_the_held_out_one(shop):
    held_out = {
        pk for case in evaluation.leave_one_out(max_users=None) for pk in case.held_out_events
    }
    last_moment = {case.user_id: case.as_of for case in evaluation.leave_one_out(max_users=None)}
    one = ranker.training_cases(max_users=None, cases_per_user=1)
    three = ranker.training_cases(max_users=None, cases_per_user=3)
    assert len(one) == 12 and len(three) == 36
    events = [pk for case in three for pk in case.held_out_events]
    assert len(set(events)) == len(events) and not set(events) & held_out
    assert all(case.as_of < last_moment[case.user_id] for case in three)


def test_more_cases_per_user_and_all_negatives_give_more_examples(shop):
    features, labels, groups, users = ranker.build_examples(max_users=None, negatives=2)
    assert len(np.unique(users)) == len(np.unique(groups))
    for pool in np.unique(groups):
        assert labels[groups == pool].sum() == 1 and (groups == pool).sum() <= 3
    more = ranker.build_examples(max_users=None, negatives=None, cases_per_user=3)
    assert len(np.unique(more[2])) > len(np.unique(groups))
    assert len(more[1]) > len(labels) and more[1].sum() > labels.sum()


def test_train_ranker_pairwise_options_are_used_and_served(shop, settings):
    settings.RECOMMENDER_USE_LEARNED_RANKER = True
    out = StringIO()
    call_command(
        "train_ranker", "--loss", "pairwise", "--kind", "fm", "--cases-per-user", "2",
        "--negatives", "all", "--max-users", "0", "--epochs", "20", "--no-progress", "--force",
        stdout=out,
    )  # fmt: skip
    assert "trained fm ranker (pairwise loss)" in out.getvalue()
    assert "from 12 users" in out.getvalue()
    scorer = learned.load_latest_scorer()
    assert scorer is not None and scorer.loss == "pairwise" and scorer.kind == "fm"
    # Trained with and without the context features; the lower validation loss is kept.
    match = re.search(r"context features (kept|left out): final val loss ([\d.]+) with them, "
                      r"([\d.]+) without", out.getvalue())  # fmt: skip
    assert match, out.getvalue()
    kept, with_them, without = match.group(1), float(match.group(2)), float(match.group(3))
    if with_them != without:  # (as printed, to four places)
        assert (kept == "kept") == (with_them < without)
    context = [FEATURES.index(name) for name in CONTEXT_FEATURES]
    left_out = not scorer.weights[context].any() and not scorer.factors[context].any()
    assert left_out == (kept == "left out")


def test_train_ranker_refuses_a_loss_for_lambdarank(shop):
    with pytest.raises(CommandError, match="--loss applies to the fm and logistic"):
        call_command("train_ranker", "--kind", "lambdarank", "--loss", "pairwise")


@pytest.mark.parametrize("value", ["0", "some"])
def test_train_ranker_rejects_a_bad_negatives_count(shop, value):
    with pytest.raises(CommandError, match="positive number or 'all'"):
        call_command("train_ranker", "--negatives", value)


def test_the_nightly_task_trains_the_measured_setup_by_default(shop, settings):
    from recommender import tasks

    settings.RECOMMENDER_USE_LEARNED_RANKER = True
    report = tasks.train_ranker()
    assert report["trained"], report
    # LightGBM's lambdarank by default, serving only when it beat the blend on validation.
    scorer = learned.load_latest_scorer()
    assert report["activated"] == ranker.beats_blend(report["validation"])
    if report["activated"]:
        assert scorer.kind == "lambdarank"
    else:
        assert scorer is None and report["path"].endswith("-blend.json")


def test_items_shown_and_ignored_before_the_cut_are_kept_as_negatives(shop):
    # user-0 was shown a keyboard twice, long before their cases, and never engaged with it.
    user = EndUser.objects.get(external_id="user-0")
    keyboard = shop["keyboard"][0]
    first = Behaviour.objects.filter(user=user).order_by("occurred_at").first()
    for minutes in (1, 2):
        Behaviour.objects.create(
            user=user, item=keyboard, kind="impression",
            occurred_at=first.occurred_at - timedelta(minutes=minutes),
        )  # fmt: skip
    features, labels, groups, users = ranker.build_examples(max_users=None, negatives=0)
    # With no sampled negatives at all, a pool of user-0 still holds the ignored keyboard.
    mine = np.flatnonzero(users == user.pk)
    assert len(mine) and (labels[mine] == 0).sum() >= 1
    others = np.flatnonzero(users != user.pk)
    assert (labels[others] == 0).sum() == 0  # nobody else was shown anything


# --- LightGBM lambdarank and the activation rule --------------------------------------


def mobile_pools(seed: int, pools: int, size: int = 20):
    """Pools whose engaged item has the largest ``is_mobile`` value: a signal the blend gives
    no weight, so only a learned ranker can find it."""
    rng = np.random.default_rng(seed)
    features = rng.random((pools * size, len(FEATURES))).astype(np.float32)
    groups = np.repeat(np.arange(pools), size)
    labels = np.zeros(pools * size, np.float32)
    for pool in range(pools):
        rows = np.flatnonzero(groups == pool)
        labels[rows[np.argmax(features[rows, COLUMN["is_mobile"]])]] = 1.0
    return features, labels, groups, groups.copy()


def hand_split(features, labels, groups, *, cold: int = 0) -> ranker.Split:
    cases = [
        evaluation.Case(user_id=int(g), as_of=timezone.now(), targets={int(g)})
        for g in np.unique(groups)
    ]
    counts = {case.user_id: (1 if case.user_id < cold else 10) for case in cases}
    return ranker.Split(
        train=(features, labels, groups, groups),
        validation=(features, labels, groups, groups),
        validation_cases=cases,
        target_users=counts,
    )


def test_pool_ndcg_shares_tied_positions():
    labels = np.array([0, 1, 0, 0, 1, 0], np.float32)
    groups = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.9, 0.2, 0.5, 0.5, 0.5])
    ndcg = ranker.pool_ndcg(scores, labels, groups)
    assert ndcg[0] == pytest.approx(1.0)  # ranked first
    assert ndcg[1] == pytest.approx(1 / np.log2(1 + 2))  # three-way tie: position 1 of 0..2


def test_lambdarank_learns_a_signal_the_blend_ignores(db):
    train_set = mobile_pools(0, 200)
    held_out = mobile_pools(1, 60)
    scorer, curve = ranker.train_lambdarank(train_set, held_out, rounds=60)
    split = hand_split(*held_out[:3])
    learned_ndcg = ranker.validation_ndcg(scorer, split)["ndcg"]
    blend_ndcg = ranker.validation_ndcg(BlendScorer(), split)["ndcg"]
    assert learned_ndcg > blend_ndcg + 0.4, (learned_ndcg, blend_ndcg)
    assert len(curve) >= scorer.rounds >= 1
    # Saved as LightGBM's text model with the blend it started from: the same scores back.
    restored = learned.from_json(scorer.to_json())
    assert isinstance(restored, learned.BoostedScorer)
    assert np.allclose(restored.score(held_out[0]), scorer.score(held_out[0]))


def test_a_ranker_worse_than_the_blend_is_not_activated(db, settings, tmp_path):
    settings.RECSITE_DATA_DIR = tmp_path
    settings.RECOMMENDER_USE_LEARNED_RANKER = True
    features, labels, groups = synthetic_pools(2, pools=40)
    split = hand_split(features, labels, groups)
    # The engaged item is the most popular: the blend (popularity weight > 0) gets part of
    # it right; a ranker that prefers the least popular item gets it wrong.
    contrary = BlendScorer({name: 0.0 for name in FEATURES} | {"popularity": -1.0})
    contrary = learned.LearnedScorer(
        kind="logistic",
        features=list(FEATURES),
        mean=np.zeros(len(FEATURES), np.float32),
        std=np.ones(len(FEATURES), np.float32),
        weights=contrary.weights,
        bias=0.0,
    )
    validation, activated, path = ranker.activate(contrary, split)
    assert not activated and path.name.endswith("-blend.json")
    assert validation["model"]["ndcg"] < validation["blend"]["ndcg"]
    assert learned.load_latest_scorer() is None  # the blend serves
    validation, activated, path = ranker.activate(contrary, split, force=True)
    assert activated and learned.load_latest_scorer().path == str(path)


def test_a_ranker_worse_on_the_cold_slice_is_not_activated():
    # Better overall, worse on the cold slice: the blend keeps serving.
    validation = {
        "model": {"ndcg": 0.30, "cold_ndcg": 0.01, "cold_cases": 5},
        "blend": {"ndcg": 0.20, "cold_ndcg": 0.05, "cold_cases": 5},
    }
    assert not ranker.beats_blend(validation)
    validation["model"]["cold_ndcg"] = 0.05
    assert ranker.beats_blend(validation)
    validation["model"]["ndcg"] = 0.20  # a tie overall is not a win
    assert not ranker.beats_blend(validation)


def test_train_ranker_lambdarank_reports_the_validation_and_the_decision(shop, settings):
    settings.RECOMMENDER_USE_LEARNED_RANKER = True
    out = StringIO()
    call_command(
        "train_ranker", "--kind", "lambdarank", "--cases-per-user", "2", "--negatives", "all",
        "--max-users", "0", "--epochs", "40", "--no-progress", stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    assert "trained lambdarank ranker" in text, text
    match = re.search(r"validation \(12 users' second-to-last engagement, (\d+) cold\): "
                      r"NDCG@10 ([\d.]+) vs blend ([\d.]+)", text)  # fmt: skip
    assert match, text
    scorer = learned.load_latest_scorer()
    if "activated the lambdarank ranker (it won)" in text:
        assert float(match.group(2)) > float(match.group(3)) and scorer.kind == "lambdarank"
    else:
        assert "the blend won" in text and scorer is None


def test_the_blend_to_beat_is_the_default_scenarios_when_tuned(db):
    from recommender.models import Scenario

    assert np.array_equal(ranker.reference_blend().weights, BlendScorer().weights)
    Scenario.objects.create(name="home", is_default=True, blend_weights={"popularity": 3.0})
    assert ranker.reference_blend().weights[COLUMN["popularity"]] == 3.0
