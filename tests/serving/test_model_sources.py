"""The behaviour models in the candidate pool: each a source of its best items for the
user's history and a score feature of every candidate; and replays that retrain them
without the held-out events."""

from datetime import timedelta

import numpy as np
from django.utils import timezone

from recommender.learning import behaviour_models as training
from recommender.learning import evaluation
from recommender.models import Behaviour, EndUser
from recommender.serving import behaviour_models, candidates, cooccurrence
from recommender.serving.pipeline import RecommendationRequest
from recommender.serving.ranking import Candidate


def _shop(make_items):
    """Shoppers who view A then B then C; one new shopper has viewed A and B."""
    items = make_items(6)
    start = timezone.now() - timedelta(days=2)
    for n in range(8):
        user = EndUser.objects.create(external_id=f"buyer-{n}")
        for step, item in enumerate(items[:3]):
            Behaviour.objects.create(
                user=user, item=item, kind="view", occurred_at=start + timedelta(minutes=step)
            )
    newcomer = EndUser.objects.create(external_id="newcomer")
    for step, item in enumerate(items[:2]):
        Behaviour.objects.create(
            user=newcomer, item=item, kind="view", occurred_at=start + timedelta(hours=step + 1)
        )
    return items, newcomer


def test_a_models_best_items_are_candidates_with_its_score(space, make_items):
    items, newcomer = _shop(make_items)
    ease = training.train_ease(training.read_interactions(), lam=1.0).serving()
    request = RecommendationRequest(user=newcomer, k=5, explain=False)
    with behaviour_models.replaying({"ease": ease}):
        pool = candidates.candidate_pool(request)
    found = {c.item_id: c for c in pool.candidates}
    c = items[2].pk
    assert "ease" in found[c].sources
    # C is the only unseen item the model knows: nothing to standardise it against, so it
    # scores 0 like the items the model does not know (the scaling is tested below).
    assert found[c].features["ease_score"] == 0.0
    assert {cand.features.get("ease_score") for cand in pool.candidates} == {0.0}
    # Without the model: neither the source nor the feature.
    pool = candidates.candidate_pool(request)
    assert all("ease" not in c.sources and "ease_score" not in c.features for c in pool.candidates)
    # Without the source (a scenario's or a baseline's choice), the feature stays.
    cooccurrence.refresh_cooccurrence()
    with behaviour_models.replaying({"ease": ease}):
        pool = candidates.candidate_pool(
            RecommendationRequest(
                user=newcomer, k=5, explain=False, sources=frozenset({"co_occurrence"})
            )
        )
    found = {c.item_id: c for c in pool.candidates}
    assert "ease" not in found[c].sources and "ease_score" in found[c].features


def test_a_replay_retrains_the_sites_models_without_the_held_out_events(
    space, make_items, settings, tmp_path
):
    settings.RECSITE_DATA_DIR = tmp_path
    items, newcomer = _shop(make_items)
    # Every buyer's last event (C) held out: nothing left links B to C.
    held = list(Behaviour.objects.filter(item=items[2]).values_list("pk", flat=True))
    assert evaluation.replay_models(held) == {}  # the site has trained no model
    training.save_model(training.train_ease(training.read_interactions(), lam=1.0))
    saved = behaviour_models.load("ease")
    replayed = evaluation.replay_models(held)
    assert set(replayed) == {"ease"}
    history = [items[0].pk, items[1].pk]
    assert saved.score_items(history, [items[2].pk])[0] > 0
    assert replayed["ease"].score_items(history, [items[2].pk])[0] == 0
    assert behaviour_models.load("ease").path == saved.path  # the saved file untouched


def _hand_made_ease(items):
    """An EASE model that knows items 0-4 (not 5): after item 0, item 2 scores 2.0, item 4
    0.5, item 3 -1.0 and item 1 nothing (0)."""
    ids = [item.pk for item in items[:5]]
    # Row of item 0 (position 0): columns 2, 3, 4; the other rows empty.
    return behaviour_models.EaseModel(ids, [0, 3, 3, 3, 3, 3], [2, 3, 4], [2.0, -1.0, 0.5], {})


def test_model_scores_are_standardised_over_the_pool_keeping_the_models_order(
    space, make_items, settings
):
    items = make_items(6)
    user = EndUser.objects.create(external_id="shopper")
    Behaviour.objects.create(user=user, item=items[0], kind="view", occurred_at=timezone.now())
    model = _hand_made_ease(items)
    assert model.known([i.pk for i in items]).tolist() == [True] * 5 + [False]
    request = RecommendationRequest(user=user, k=5, explain=False)
    with behaviour_models.replaying({"ease": model}):
        pool = candidates.candidate_pool(request)
    found = {c.item_id: c for c in pool.candidates}
    # The model offers every item it scores (not 0, not seen): 2, 4 and 3, the last one
    # below 0, which dividing by the best score used to clip to 0 like an unknown item.
    assert {i for i, c in found.items() if "ease" in c.sources} == {
        items[2].pk,
        items[3].pk,
        items[4].pk,
    }
    score = {i: c.features.get("ease_score") for i, c in found.items()}
    # Standardised over the pool: the model's order kept, the known candidates' mean 0
    # and standard deviation 1.
    assert score[items[2].pk] > score[items[4].pk] > score[items[3].pk]
    known = [v for i, v in score.items() if i != items[5].pk]
    assert abs(np.mean(known)) < 1e-9 and abs(np.std(known) - 1) < 1e-9
    # On a pool of known size, by hand: items 1-4 score 0, 2, -1 and 0.5 (mean 0.375,
    # standard deviation 1.0825); item 5, unknown to the model, gets 0 (no opinion).
    pool_of_five = [Candidate(item_id=item.pk) for item in items[1:]]
    candidates._add_model_scores(pool_of_five, {"ease": model}, [items[0].pk])
    scaled = [c.features["ease_score"] for c in pool_of_five]
    np.testing.assert_allclose(scaled, [-0.34641, 1.50111, -1.27018, 0.11547, 0.0], atol=1e-5)
    # RECOMMENDER_MODEL_CANDIDATES bounds what each model offers (here at least k × 3 / 2:
    # the other sources' half share).
    settings.RECOMMENDER_MODEL_CANDIDATES = 1
    settings.RECOMMENDER_CANDIDATES_PER_SOURCE = 2
    with behaviour_models.replaying({"ease": model}):
        pool = candidates.candidate_pool(RecommendationRequest(user=user, k=1, explain=False))
    offered = {c.item_id for c in pool.candidates if "ease" in c.sources}
    assert offered == {items[2].pk}


def test_model_score_scaling_minmax_and_a_bad_value(space, make_items, settings):
    import pytest
    from django.core.exceptions import ImproperlyConfigured

    items = make_items(6)
    model = _hand_made_ease(items)
    settings.RECOMMENDER_MODEL_SCORE_SCALING = "minmax"
    pool = [Candidate(item_id=item.pk) for item in items[1:]]
    candidates._add_model_scores(pool, {"ease": model}, [items[0].pk])
    # Items 1-4 score 0, 2, -1 and 0.5: (v - -1) / (2 - -1); item 5 unknown: 0.
    np.testing.assert_allclose(
        [c.features["ease_score"] for c in pool], [1 / 3, 1.0, 0.0, 0.5, 0.0], atol=1e-9
    )
    # One known candidate: the model's best, 1.
    pair = [Candidate(item_id=items[2].pk), Candidate(item_id=items[5].pk)]
    candidates._add_model_scores(pair, {"ease": model}, [items[0].pk])
    assert [c.features["ease_score"] for c in pair] == [1.0, 0.0]
    settings.RECOMMENDER_MODEL_SCORE_SCALING = "rank"
    with pytest.raises(ImproperlyConfigured, match="zscore, minmax, not 'rank'"):
        candidates._add_model_scores(pool, {"ease": model}, [items[0].pk])
