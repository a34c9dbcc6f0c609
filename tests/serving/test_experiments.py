"""A/B experiments: stable assignment by shares, variants serving their configuration,
results with significance and a sample-ratio check, promotion of the winner."""

import uuid

import numpy as np
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from recommender.apikeys import create_key
from recommender.learning import experiment_results
from recommender.models import Behaviour, EndUser, Experiment, Item, Scenario, ServedList, Variant
from recommender.serving import experiments, served_lists
from recommender.spaces import embedding

pytestmark = pytest.mark.django_db
API = "/api/v1"


@pytest.fixture
def experiment(settings, hashing_space, make_items):
    """Scenario "home" with a running experiment: control (k=4) and "short" (k=2), 1:1."""
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    items = make_items(10)
    embedding.embed_items(hashing_space, [item.pk for item in items])
    home = Scenario.objects.create(name="home", k=4)
    short = Scenario.objects.create(name="home-short", k=2, diversity=0.5)
    test = Experiment.objects.create(name="shorter-lists", scenario=home)
    Variant.objects.create(experiment=test, name="control", share=1, configuration=home, position=0)
    Variant.objects.create(experiment=test, name="short", share=1, configuration=short, position=1)
    experiments.start(test)
    test.refresh_from_db()
    return test


def test_assignment_is_stable_and_follows_the_shares(experiment):
    users = [EndUser(external_id=f"u{n}") for n in range(2000)]
    first = [experiments.variant_for(experiment, user).name for user in users]
    assert first == [experiments.variant_for(experiment, user).name for user in users]
    assert 0.45 < first.count("short") / len(first) < 0.55
    Variant.objects.filter(name="short").update(share=3)
    skewed = [experiments.variant_for(experiment, user).name for user in users]
    assert 0.70 < skewed.count("short") / len(skewed) < 0.80
    assert experiments.variant_for(experiment, None).name == "control"  # anonymous


def test_each_user_is_served_their_variants_configuration(experiment):
    client = APIClient()
    seen = {}
    for n in range(12):
        user = EndUser.objects.create(external_id=f"shopper-{n}")
        body = client.get(f"{API}/users/{user.external_id}/recommendations", {"scenario": "home"})
        variant = experiments.variant_for(experiment, user).name
        assert len(body.json()["items"]) == (2 if variant == "short" else 4)
        seen[body.json()["recommendation_id"]] = variant
    served_lists.drain()
    logged = dict(ServedList.objects.values_list("id", "variant"))
    assert {key.hex: value for key, value in logged.items()} == seen
    assert set(seen.values()) == {"control", "short"}


def _log_list(variant: str, impressions: int, clicks: int, experiment: Experiment) -> None:
    """A served list, to a new shopper, with that many impressions and clicks (the same
    item, for brevity)."""
    item = Item.objects.first()
    user = EndUser.objects.create(external_id=f"viewer-{uuid.uuid4().hex}")  # one shopper each
    row = ServedList.objects.create(
        id=uuid.uuid4(), user=user, endpoint="recommendations", scenario="home",
        variant=variant, items=[{"item": item.pk, "position": 1, "score": 1.0, "sources": []}],
        served_at=timezone.now(),
    )  # fmt: skip
    Behaviour.objects.bulk_create(
        Behaviour(user=user, item=item, kind=kind, recommendation_id=row.id)
        for kind in ["impression"] * impressions + ["click"] * clicks
    )


def test_results_report_ctr_significance_and_sample_ratio(experiment):
    for _ in range(10):
        _log_list("control", 100, 5, experiment)
        _log_list("short", 100, 12, experiment)
    found = experiment_results.results(experiment)
    control, short = found.variants
    assert (control.lists, control.impressions, control.clicks) == (10, 1000, 50)
    assert short.ctr.value == pytest.approx(0.12) and short.ctr.low > control.ctr.high
    assert short.p_value_vs_control < 0.001 and control.p_value_vs_control is None
    assert not found.sample_ratio_mismatch
    assert experiment_results.winner(experiment).name == "short"
    for _ in range(40):
        _log_list("control", 1, 0, experiment)  # 50 lists against 10: not the 1:1 shares
    assert experiment_results.results(experiment).sample_ratio_mismatch
    assert experiment_results.winner(experiment) is None  # never promoted on a broken split


def test_the_ctr_test_counts_shoppers_not_impressions(experiment):
    # The same totals as a clear win if impressions were independent (50 against 80 clicks
    # in 1,000 impressions each: pooled z-test p < 0.01), but the control's clicks all come
    # from one shopper: between shoppers the difference is noise.
    for n in range(10):
        _log_list("control", 100, 50 if n == 0 else 0, experiment)
        _log_list("short", 100, 8, experiment)
    found = experiment_results.results(experiment)
    control, short = found.variants
    assert (control.clicks, short.clicks) == (50, 80)
    assert control.shoppers == short.shoppers == 10
    assert short.p_value_vs_control > 0.05
    assert experiment_results.winner(experiment) is None


def test_the_delta_method_variance_matches_a_bootstrap_over_shoppers():
    rng = np.random.default_rng(0)
    impressions = rng.integers(1, 30, size=400).astype(float)
    clicks = rng.binomial(impressions.astype(int), rng.beta(2, 12, size=400)).astype(float)
    delta = experiment_results.ratio_variance(clicks, impressions)
    resampled = []
    for _ in range(2000):
        pick = rng.integers(0, 400, size=400)
        resampled.append(clicks[pick].sum() / impressions[pick].sum())
    assert delta == pytest.approx(np.var(resampled), rel=0.15)


def test_an_equal_split_has_no_winner(experiment):
    for _ in range(10):
        _log_list("control", 100, 8, experiment)
        _log_list("short", 100, 8, experiment)
    found = experiment_results.results(experiment)
    assert found.variants[1].p_value_vs_control == pytest.approx(1.0)
    assert experiment_results.winner(experiment) is None


def test_promoting_the_winner_makes_its_configuration_the_scenarios(experiment, admin_client):
    for _ in range(10):
        _log_list("control", 100, 5, experiment)
        _log_list("short", 100, 12, experiment)
    response = admin_client.post(
        "/admin/recommender/experiment/",
        {"action": "promote_winner", "_selected_action": [experiment.pk]},
        follow=True,
    )
    assert response.status_code == 200
    home = Scenario.objects.get(name="home")
    assert (home.k, home.diversity) == (2, 0.5)
    experiment.refresh_from_db()
    assert not experiment.is_running and experiment.stopped_at is not None
    page = admin_client.get(f"/admin/recommender/experiment/{experiment.pk}/change/")
    assert "p vs control" in page.content.decode()


def test_one_running_experiment_per_scenario(experiment):
    other = Experiment.objects.create(name="another", scenario=experiment.scenario)
    with pytest.raises(Exception):  # noqa: B017 - the database's unique constraint
        experiments.start(other)


def test_the_results_endpoint_needs_the_admin_scope(experiment):
    _log_list("control", 10, 1, experiment)
    admin = APIClient()
    admin.credentials(HTTP_AUTHORIZATION=f"Api-Key {create_key('a', 'admin')[1]}")
    body = admin.get(f"{API}/metrics/experiments/shorter-lists").json()
    assert body["experiment"] == "shorter-lists" and [v["name"] for v in body["variants"]] == [
        "control",
        "short",
    ]
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Api-Key {create_key('r', 'read')[1]}")
    assert reader.get(f"{API}/metrics/experiments/shorter-lists").status_code == 403
