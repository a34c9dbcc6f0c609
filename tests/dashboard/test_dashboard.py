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


@pytest.fixture
def log(settings, make_items):
    from tests.learning import online_log

    settings.RECOMMENDER_EMBED_ON_SAVE = False
    return online_log.build(make_items)


def test_the_dashboard_charts_ctr_per_source_and_position(log, admin_client):
    page = admin_client.get("/admin/dashboard/").content.decode()
    sources = page[page.index('data-testid="online-sources"') :]
    sources = sources[: sources.index("</table>")]
    # sku-0 in L1 counts for history and for popular (tests/learning/online_log.py).
    popular = sources[sources.index('data-source="popular"') :].split("</tr>")[0]
    assert "<td>4</td><td>3</td><td>2</td>" in popular and "66.7% [" in popular
    assert "width: 67%" in popular  # 66.7 % of the best source's CTR (history, 100 %)
    history = sources[sources.index('data-source="history"') :].split("</tr>")[0]
    assert "<td>1</td><td>1</td><td>1</td>" in history and "100.0% [" in history
    curve = page[page.index('data-testid="online-positions"') :]
    bars = curve.split('class="rd-bar"')[1:]
    assert [bar.split('data-position="')[1].split('"')[0] for bar in bars] == ["1", "2", "3"]
    assert "position 1: CTR 50.0% [" in bars[0] and "1 clicks, 2 impressions, 3 shown" in bars[0]
    assert "height: 50%" in bars[0] and "height: 100%" in bars[2]


def test_the_dashboard_shows_variants_and_coverage(log, admin_client):
    page = admin_client.get("/admin/dashboard/").content.decode()
    variants = page[page.index('data-testid="online-variants"') :].split("</table>")[0]
    rows = [r.split('"')[0] for r in variants.split('data-variant="')[1:]]
    assert rows == ["home/a", "home/b"]  # lists served outside an experiment are left out
    assert "66.7% [" in variants and "50.0% [" in variants
    coverage = page[page.index('data-testid="online-coverage"') :].split("</table>")[0]
    home = coverage[coverage.index('data-scenario="home"') :].split("</tr>")[0]
    assert "<td>4 / 5</td>" in home and "80.0%" in home
    cart = coverage[coverage.index('data-scenario="cart"') :].split("</tr>")[0]
    assert "<td>2</td><td>1 / 5</td>" in cart and "20.0%" in cart


def test_without_served_lists_the_online_charts_are_left_out(db, admin_client):
    page = admin_client.get("/admin/dashboard/").content.decode()
    assert 'data-testid="online"' in page and "No list served yet" in page
    for part in ("online-sources", "online-positions", "online-variants", "online-coverage"):
        assert f'data-testid="{part}"' not in page
