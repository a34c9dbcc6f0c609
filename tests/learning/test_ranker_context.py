"""The learned ranker and the context features: trained from each event's own context and
time, a device preference learned and served, and rankers saved before the features."""

import json
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from recommender.learning import ranker
from recommender.models import Behaviour, EndUser, Item
from recommender.serving import context_features, learned, pipeline, ranking
from recommender.serving.candidates import candidate_pool
from recommender.serving.ranking import FEATURES
from recommender.spaces import embedding

COLUMN = {name: index for index, name in enumerate(FEATURES)}
TEA = ["绿茶", "红茶", "乌龙茶", "普洱茶", "白茶", "花茶", "茉莉花茶", "黑茶"]
KEYBOARDS = [
    "机械键盘",
    "键帽",
    "青轴键盘",
    "红轴键盘",
    "静音键盘",
    "无线键盘",
    "蓝牙键盘",
    "游戏键盘",
]
# The nine features of the rankers saved before the context features were appended.
OLD_FEATURES = FEATURES[: FEATURES.index("keyword_match") + 1]


@pytest.fixture
def shop(db, settings, tmp_path, hashing_space):
    """Every user alternates devices: on the phone they engage with tea, on the desktop
    with keyboards, so only the device says which category comes next."""
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    settings.RECSITE_DATA_DIR = tmp_path
    items = {
        "tea": [
            Item.objects.create(external_id=f"tea-{n}", title=t, category="tea")
            for n, t in enumerate(TEA)
        ],
        "keyboard": [
            Item.objects.create(external_id=f"key-{n}", title=t, category="keyboard")
            for n, t in enumerate(KEYBOARDS)
        ],
    }
    embedding.embed_items(hashing_space, list(Item.objects.values_list("pk", flat=True)))
    start = timezone.now() - timedelta(days=20)
    for u in range(16):
        user = EndUser.objects.create(external_id=f"user-{u}")
        for step in range(8):
            mobile = (u + step) % 2 == 0
            category = "tea" if mobile else "keyboard"
            Behaviour.objects.create(
                user=user,
                item=items[category][(u + step // 2) % 8],
                kind="view",
                context={"device": "mobile" if mobile else "desktop", "page": "home"},
                occurred_at=start + timedelta(hours=24 * u + 3 * step + (u % 5)),
            )
    return items


def test_training_pools_take_the_context_and_time_of_their_own_event(shop):
    features, labels, groups, _ = ranker.build_examples(
        max_users=None, negatives=None, cases_per_user=3
    )
    cases = ranker.training_cases(max_users=None, cases_per_user=3)
    assert len(np.unique(groups)) > 20
    for row, group in enumerate(groups):
        case = cases[group]
        expected = context_features.request_features(case.as_of, case.context)
        for name, value in expected.items():
            assert features[row, COLUMN[name]] == pytest.approx(value, abs=1e-6), name
    positives = features[labels == 1]
    # A phone event's item is tea: what phones engaged with before it (shares as of then).
    mobile = positives[:, COLUMN["is_mobile"]] == 1
    assert mobile.any() and (~mobile).any()
    assert (positives[:, COLUMN["context_category_affinity"]] > 0.5).all()


def top_share(scorer, user, device: str, category: str, k: int = 4) -> float:
    """The share of ``category`` in the top ``k`` of ``user``'s list from ``device``."""
    pool = candidate_pool(
        pipeline.RecommendationRequest(user=user, context={"device": device}, explain=False)
    ).candidates
    ranking.score(pool, scorer)
    top = sorted(pool, key=lambda c: -c.score)[:k]
    return sum(c.category == category for c in top) / k


def test_a_factorization_machine_learns_that_phones_bring_tea(shop):
    features, labels, groups, users = ranker.build_examples(
        max_users=None, negatives=None, cases_per_user=3
    )
    scorer, _, _ = ranker.train(
        features, labels, groups, kind="fm", loss="pairwise", users=users, epochs=150
    )
    # A new shopper who used both: half tea, half keyboards.
    shopper = EndUser.objects.create(external_id="shopper")
    for n, category in enumerate(("tea", "keyboard")):
        Behaviour.objects.create(
            user=shopper,
            item=shop[category][n],
            kind="view",
            occurred_at=timezone.now() - timedelta(hours=2 - n),
        )
    on_phone = top_share(scorer, shopper, "mobile", "tea")
    on_desktop = top_share(scorer, shopper, "desktop", "tea")
    assert on_phone > on_desktop
    assert on_phone >= 0.75 and on_desktop <= 0.25


def test_only_a_factorization_machine_can_let_the_device_flip_a_features_weight():
    # Phone pools engage with their most trending candidate, desktop pools with their most
    # popular one; is_mobile is the same on all of a pool's rows, so a linear model cannot
    # tell the two kinds of pool apart, and an FM can (is_mobile × trending).
    def pools(seed: int, n: int = 120, size: int = 20):
        rng = np.random.default_rng(seed)
        x = rng.random((n * size, len(FEATURES))).astype(np.float32)
        x[:, COLUMN["query_similarity"]] = 0.0
        groups = np.repeat(np.arange(n), size)
        mobile = np.repeat(np.arange(n) % 2 == 0, size)
        x[:, COLUMN["is_mobile"]] = mobile
        labels = np.zeros(n * size, np.float32)
        for pool in range(n):
            rows = np.flatnonzero(groups == pool)
            wanted = "trending" if pool % 2 == 0 else "popularity"
            labels[rows[np.argmax(x[rows, COLUMN[wanted]])]] = 1.0
        return x, labels, groups

    def top1(scorer, x, labels, groups):
        return np.mean(
            [
                labels[groups == g][np.argmax(scorer.score(x[groups == g]))]
                for g in np.unique(groups)
            ]
        )

    x, labels, groups = pools(0)
    test = pools(1)
    fm, _, _ = ranker.train(x, labels, groups, kind="fm", loss="pairwise", epochs=150)
    linear, _, _ = ranker.train(x, labels, groups, kind="logistic", loss="pairwise", epochs=150)
    assert np.dot(fm.factors[COLUMN["is_mobile"]], fm.factors[COLUMN["trending"]]) > 0
    assert top1(fm, *test) > top1(linear, *test) + 0.1


def old_ranker(directory) -> dict:
    """A ranker file as saved before the context features: nine features."""
    rng = np.random.default_rng(0)
    n = len(OLD_FEATURES)
    data = {
        "kind": "fm",
        "features": list(OLD_FEATURES),
        "mean": [0.0] * n,
        "std": [1.0] * n,
        "weights": rng.normal(size=n).tolist(),
        "bias": 0.0,
        "factors": rng.normal(scale=0.1, size=(n, 4)).tolist(),
        "loss": "pairwise",
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ranker-20260101-000000-000000-fm.json").write_text(json.dumps(data))
    return data


def test_a_ranker_saved_before_the_context_features_still_loads_and_serves(shop, settings):
    settings.RECOMMENDER_USE_LEARNED_RANKER = True
    data = old_ranker(learned.ranker_dir())
    scorer = learned.load_latest_scorer()
    assert scorer is not None and scorer.features == list(OLD_FEATURES)
    matrix = np.random.default_rng(1).random((6, len(FEATURES))).astype(np.float32)
    # The newer columns are ignored: the scores are those of the nine old ones.
    changed = matrix.copy()
    changed[:, len(OLD_FEATURES) :] = 0.5
    assert np.allclose(scorer.score(matrix), scorer.score(changed))
    x = matrix[:, : len(OLD_FEATURES)]
    v = np.asarray(data["factors"], np.float32)
    expected = x @ np.asarray(data["weights"], np.float32) + 0.5 * (
        (x @ v) ** 2 - (x * x) @ (v * v)
    ).sum(axis=1)
    assert np.allclose(scorer.score(matrix), expected, atol=1e-5)
    user = EndUser.objects.get(external_id="user-0")
    results = pipeline.recommend(
        pipeline.RecommendationRequest(user=user, k=5, context={"device": "mobile"})
    )
    assert len(results) == 5 and ranking.current_scorer() is scorer
