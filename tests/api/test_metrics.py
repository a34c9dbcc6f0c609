"""The online-metrics endpoints: per variant, source and position, coverage, their query
parameters and who may read them (the small log of tests/learning/online_log.py)."""

import pytest
from rest_framework.test import APIClient

from recommender.apikeys import create_key
from tests.learning import online_log

pytestmark = pytest.mark.django_db
API = "/api/v1"
BREAKDOWNS = ("scenarios", "variants", "sources", "positions", "coverage")


@pytest.fixture
def log(settings, make_items):
    settings.RECOMMENDER_REQUIRE_API_KEY = True
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    return online_log.build(make_items)


def keyed(scope: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {create_key(scope, scope)[1]}")
    return client


def rate(successes: int, trials: int) -> dict:
    from recommender.learning.online_metrics import wilson

    low, high = wilson(successes, trials)
    return {"value": pytest.approx(successes / trials), "low": low, "high": high}


def test_variants(log):
    answer = keyed("admin").get(f"{API}/metrics/variants", {"days": 7, "scenario": "home"})
    assert answer.status_code == 200
    assert answer.json() == [
        {"scenario": "home", "variant": "a", "lists": 1, "shown": 3, "impressions": 3,
         "clicks": 2, "carts": 0, "purchases": 1, "ctr": rate(2, 3), "conversion": rate(1, 2)},
        {"scenario": "home", "variant": "b", "lists": 1, "shown": 2, "impressions": 2,
         "clicks": 1, "carts": 0, "purchases": 0, "ctr": rate(1, 2),
         "conversion": rate(0, 1)},
    ]  # fmt: skip
    every = keyed("admin").get(f"{API}/metrics/variants", {"days": 7}).json()
    assert {(row["scenario"], row["variant"]) for row in every} == {
        ("home", "a"), ("home", "b"), ("cart", ""), ("empty", ""),
    }  # fmt: skip


def test_sources_count_an_item_for_each_of_its_sources(log):
    rows = keyed("admin").get(f"{API}/metrics/sources", {"days": 7}).json()
    by = {row["source"]: row for row in rows}
    assert [row["source"] for row in rows] == ["popular", "vector", "", "history"]
    assert {k: by["popular"][k] for k in ("shown", "impressions", "clicks", "purchases")} == {
        "shown": 4, "impressions": 3, "clicks": 2, "purchases": 1,
    }  # fmt: skip
    assert by["history"]["clicks"] == 1 and by["history"]["purchases"] == 1
    assert by["popular"]["ctr"] == rate(2, 3) and by["vector"]["ctr"] == rate(1, 2)


def test_positions(log):
    rows = keyed("admin").get(f"{API}/metrics/positions/", {"days": 7}).json()
    assert [(row["position"], row["shown"], row["impressions"], row["clicks"]) for row in rows] == [
        (1, 3, 2, 1),
        (2, 3, 2, 1),
        (3, 1, 1, 1),
    ]
    assert [row["ctr"] for row in rows] == [rate(1, 2), rate(1, 2), rate(1, 1)]


def test_coverage(log):
    rows = keyed("admin").get(f"{API}/metrics/coverage", {"days": 7}).json()
    assert rows == [
        {"scenario": "cart", "lists": 1, "items_shown": 2, "active_items_shown": 1,
         "active_items": 5, "coverage": pytest.approx(0.2)},
        {"scenario": "empty", "lists": 1, "items_shown": 0, "active_items_shown": 0,
         "active_items": 5, "coverage": 0.0},
        {"scenario": "home", "lists": 2, "items_shown": 4, "active_items_shown": 4,
         "active_items": 5, "coverage": pytest.approx(0.8)},
    ]  # fmt: skip


def test_scenarios_take_a_scenario_too(log):
    rows = keyed("admin").get(f"{API}/metrics/scenarios", {"scenario": "cart"}).json()
    assert [(row["scenario"], row["lists"], row["clicks"]) for row in rows] == [("cart", 1, 1)]
    # scenario= with no value: every scenario.
    rows = keyed("admin").get(f"{API}/metrics/scenarios", {"scenario": ""}).json()
    assert {row["scenario"] for row in rows} == {"home", "cart", "empty"}


@pytest.mark.parametrize("endpoint", BREAKDOWNS)
@pytest.mark.parametrize(
    "params, field",
    [
        ({"days": 0}, "days"),
        ({"days": 367}, "days"),
        ({"days": "week"}, "days"),
        ({"scenario": "not a slug!"}, "scenario"),
        ({"scenario": "x" * 65}, "scenario"),
        ({"day": 3}, "day"),  # unknown parameter
    ],
)
def test_bad_parameters_are_a_400_naming_the_field(log, endpoint, params, field):
    response = keyed("admin").get(f"{API}/metrics/{endpoint}", params)
    assert response.status_code == 400 and field in response.json(), response.content


@pytest.mark.parametrize("endpoint", BREAKDOWNS)
def test_an_admin_key_or_staff_reads_them_and_a_read_key_does_not(log, endpoint, admin_user):
    assert keyed("read").get(f"{API}/metrics/{endpoint}").status_code == 403
    assert keyed("write").get(f"{API}/metrics/{endpoint}").status_code == 403
    assert APIClient().get(f"{API}/metrics/{endpoint}").status_code in (401, 403)
    assert keyed("admin").get(f"{API}/metrics/{endpoint}").status_code == 200
    staff = APIClient()
    staff.force_login(admin_user)
    assert staff.get(f"{API}/metrics/{endpoint}").status_code == 200


def test_the_schema_documents_them(log, admin_user):
    staff = APIClient()
    staff.force_login(admin_user)
    schema = staff.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for endpoint in BREAKDOWNS:
        operation = schema["paths"][f"/api/v1/metrics/{endpoint}/"]["get"]
        assert {p["name"] for p in operation["parameters"]} == {"days", "scenario"}
    rows = schema["components"]["schemas"]["SourceMetrics"]["properties"]
    assert {"source", "shown", "impressions", "clicks", "ctr"} <= set(rows)
