"""The behaviour models in the candidate pool: each a source of its best items for the
user's history and a score feature of every candidate; and replays that retrain them
without the held-out events."""

from datetime import timedelta

from django.utils import timezone

from recommender.learning import behaviour_models as training
from recommender.learning import evaluation
from recommender.models import Behaviour, EndUser
from recommender.serving import behaviour_models, candidates, cooccurrence
from recommender.serving.pipeline import RecommendationRequest


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
    assert found[c].features["ease_score"] == 1.0  # the model's best for this history
    assert all(c.features.get("ease_score", 0.0) <= 1.0 for c in pool.candidates)
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
    assert "ease" not in found[c].sources and found[c].features["ease_score"] == 1.0


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
