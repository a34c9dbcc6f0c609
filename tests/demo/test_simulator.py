"""The shopper simulator: its taste model, and a small experiment run through the loop."""

import pytest

from recommender.demo.catalogue import PERSONAS
from recommender.demo.simulator import Simulator, taste
from recommender.learning import experiment_results
from recommender.models import Behaviour, Experiment, Item, Scenario, Variant
from recommender.serving import experiments, served_lists
from recommender.spaces import embedding

pytestmark = pytest.mark.django_db
CATEGORIES = ("clothing", "electronics", "books", "food", "home", "beauty", "sports", "baby-toys")


@pytest.fixture
def shop(settings, hashing_space):
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    items = [
        Item.objects.create(
            external_id=f"s{n:03d}", title=f"{category} thing {n}", category=category,
            attributes={"price": 50.0 + n},
        )
        for n, category in enumerate(CATEGORIES * 5)
    ]  # fmt: skip
    embedding.embed_items(hashing_space, [item.pk for item in items])
    return items


def test_taste_follows_the_personas_categories_and_budget(shop):
    student = next(p for p in PERSONAS if p.slug == "budget_student")
    food = Item.objects.filter(category="food").first()
    clothes = Item.objects.filter(category="clothing").first()
    assert taste(student, food) > taste(student, clothes)
    food.attributes = {"price": 9999.0}
    assert taste(student, food) < taste(student, Item.objects.filter(category="food").last())


def test_simulated_shoppers_run_an_experiment_through_the_loop(shop):
    placement = Scenario.objects.create(name="sim-home")
    popular = Scenario.objects.create(name="popular-only", sources=["popular"])
    test = Experiment.objects.create(name="sim", scenario=placement)
    Variant.objects.create(experiment=test, name="control", configuration=popular, position=0)
    Variant.objects.create(experiment=test, name="full", configuration=placement, position=1)
    experiments.start(test)
    totals = Simulator("sim-home", seed=3, k=6).run(shoppers=24, sessions_per_shopper=2)
    assert totals["sessions"] == 48 and 0 < totals["shown"] <= 48 * 6
    served_lists.drain()
    found = experiment_results.results(Experiment.objects.get(name="sim"))
    assert sum(v.lists for v in found.variants) == 48
    assert sum(v.impressions for v in found.variants) == totals["shown"]
    assert sum(v.clicks for v in found.variants) == totals["clicks"]
    assert Behaviour.objects.filter(kind="view").count() == 24 * 4  # the shoppers' histories
