"""The operators' dashboard: online figures per scenario, and no dependency on the demo."""

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from recommender.models import Experiment, Scenario, Variant
from recommender.serving import experiments, served_lists
from recommender.spaces import embedding

pytestmark = pytest.mark.django_db
API = "/api/v1"


@pytest.fixture
def served(settings, hashing_space, make_items):
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    items = make_items(6)
    embedding.embed_items(hashing_space, [item.pk for item in items])
    home = Scenario.objects.create(name="home")
    test = Experiment.objects.create(name="home-test", scenario=home)
    Variant.objects.create(experiment=test, name="control", configuration=home)
    experiments.start(test)
    client = APIClient()
    client.post(
        f"{API}/behaviours", {"user": "alice", "item": "sku-0", "kind": "like"}, format="json"
    )
    body = client.get(f"{API}/users/alice/recommendations", {"scenario": "home", "k": 3}).json()
    for n, entry in enumerate(body["items"], start=1):
        event = {"user": "alice", "item": entry["id"], "kind": "impression",
                 "recommendation_id": body["recommendation_id"], "position": n}  # fmt: skip
        client.post(f"{API}/behaviours", event, format="json")
    served_lists.drain()
    return test


def test_the_dashboard_shows_online_figures_per_scenario(served, admin_client):
    page = admin_client.get("/admin/dashboard/").content.decode()
    section = page[page.index('data-testid="online"') :]
    assert "home" in section and "0.0% [" in section  # 3 impressions, no click yet
    assert f"/admin/recommender/experiment/{served.pk}/change/" in section


@override_settings(ROOT_URLCONF="tests.production_urls")
def test_the_admin_works_without_the_demo_storefront(served, admin_client):
    for path in ("/admin/", "/admin/dashboard/"):
        response = admin_client.get(path)
        assert response.status_code == 200, path
        assert 'href="/item/' not in response.content.decode()  # no storefront links
        assert (
            'href="/"'
            not in response.content.decode().split("recommender-dashboard-link")[-1][:600]
        )
