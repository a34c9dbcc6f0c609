"""Prometheus metrics at /metrics (recommender.monitoring, recsite.metrics, recommender.counters):
who may scrape, request latency per endpoint and scenario, events, embedding lag, online
CTR, and a live gunicorn in multiprocess mode."""

import math
import socket
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from recommender import apikeys, monitoring
from recommender.ingest import events
from recommender.models import EndUser, Item, Scenario
from recommender.serving import learned
from recommender.serving.ranking import FEATURES
from recommender.spaces import embedding
from recsite import testing
from tests.learning import online_log

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "scrape-token-0123456789"


@pytest.fixture(autouse=True)
def metrics_on(settings):
    settings.RECOMMENDER_METRICS_ENABLED = True
    settings.RECOMMENDER_METRICS_TOKEN = TOKEN
    monitoring.reset_caches()
    yield settings
    monitoring.reset_caches()


def scrape(client=None, **headers) -> dict[str, list]:
    """The scrape as {sample name: [(labels, value), …]}."""
    client = client or APIClient()
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **headers)
    assert response.status_code == 200, response.content
    return parse(response.content.decode())


def parse(text: str) -> dict[str, list]:
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: dict, name: str, **labels) -> float | None:
    """The sum of ``name``'s samples whose labels include ``labels`` (None: no sample)."""
    found = [v for got, v in samples.get(name, []) if labels.items() <= got.items()]
    return sum(found) if found else None


# --- Who may scrape -----------------------------------------------------------------------------


def test_off_by_default_is_a_404(settings):
    settings.RECOMMENDER_METRICS_ENABLED = False
    assert APIClient().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404


def test_a_scrape_needs_the_token_or_an_admin_key(settings):
    client = APIClient()
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Api-Key rk_no_such").status_code == 401
    _, read = apikeys.create_key("reader", "read")
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Api-Key {read}")
    assert response.status_code == 403
    assert b"'admin' is needed" in response.content
    _, admin = apikeys.create_key("prometheus", "admin")
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Api-Key {admin}").status_code == 200
    assert client.get("/metrics", HTTP_X_API_KEY=admin).status_code == 200
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    # Without a token configured, no bearer token opens it (not even an empty one).
    settings.RECOMMENDER_METRICS_TOKEN = None
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Api-Key {admin}").status_code == 405


# --- Requests ---------------------------------------------------------------------------------


@pytest.fixture
def shop(space, make_items):
    items = make_items(8)
    embedding.embed_items(space, [item.pk for item in items])
    EndUser.objects.create(external_id="alice")
    return items


def test_a_recommendations_call_shows_in_the_latency_histogram(shop):
    Scenario.objects.create(name="home")
    client = APIClient()
    labels = {"endpoint": "user-recommendations", "method": "GET", "status": "200"}
    before = scrape(client)
    count = "recsite_http_request_duration_seconds_count"
    was = value(before, count, **labels, scenario="home") or 0
    was_plain = value(before, count, **labels, scenario="") or 0

    response = client.get("/api/v1/users/alice/recommendations", {"k": 3, "scenario": "home"})
    assert response.status_code == 200, response.content
    assert client.get("/api/v1/users/alice/recommendations", {"k": 3}).status_code == 200
    # An unknown scenario is a 400 and no label of its own (bounded cardinality).
    response = client.get("/api/v1/users/alice/recommendations", {"scenario": "nope-" + "x" * 8})
    assert response.status_code == 400
    client.get("/api/v1/users/alice/no-such-path/deep")

    after = scrape(client)
    assert value(after, count, **labels, scenario="home") == was + 1
    assert value(after, count, **labels, scenario="") == was_plain + 1
    bucket = value(
        after, "recsite_http_request_duration_seconds_bucket", **labels, scenario="home", le="+Inf"
    )
    assert bucket == was + 1
    assert value(after, "recsite_http_requests_total", **labels, scenario="home") == was + 1
    scenarios = {got["scenario"] for got, _ in after[count]}
    assert not any(name.startswith("nope-") for name in scenarios)
    endpoints = {got["endpoint"] for got, _ in after[count]}
    assert "unmatched" in endpoints  # a 404 path, never the path itself
    assert not any("alice" in endpoint for endpoint in endpoints)


def test_a_metrics_call_names_its_scenario_by_parameter(shop):
    """Endpoints whose answer carries no scenario take a `scenario` parameter that names one."""
    Scenario.objects.create(name="cart")
    client = APIClient()
    labels = {"endpoint": "metrics-variants", "method": "GET", "status": "200"}
    assert client.get("/api/v1/metrics/variants", {"scenario": "cart"}).status_code == 200
    samples = scrape(client)
    assert value(samples, "recsite_http_requests_total", **labels, scenario="cart") >= 1


# --- Events, tasks, lag, heartbeats, ranker, queues ---------------------------------------------


def test_events_ingested_are_counted_by_kind(make_items):
    make_items(2)
    before = value(scrape(), "recsite_events_ingested_total", kind="click") or 0
    events.record_event(events.EventInput(user="bob", kind="click", item="sku-0", event_id="e1"))
    events.record_event(events.EventInput(user="bob", kind="click", item="sku-0", event_id="e1"))
    result = events.record_events(
        [
            events.EventInput(user="bob", kind="click", item="sku-1", event_id="e2"),
            events.EventInput(user="carol", kind="click", item="sku-0"),
            events.EventInput(user="carol", kind="view", item="sku-1"),
            events.EventInput(user="bob", kind="click", item="sku-0", event_id="e1"),  # repeat
        ]
    )
    assert result.created == 3
    assert value(scrape(), "recsite_events_ingested_total", kind="click") == before + 3


def test_a_space_with_missing_and_stale_vectors_shows_embedding_lag(make_space, make_items):
    ready = make_space("lagging", dim=16)
    make_space("new-model", dim=8, activate=False)
    items = make_items(4)
    embedding.embed_items(ready, [item.pk for item in items[:3]])
    Item.objects.filter(pk=items[0].pk).update(title="改过的标题")
    samples = scrape()
    assert value(samples, "recsite_embedding_missing_vectors", space="lagging") == 1
    assert value(samples, "recsite_embedding_stale_vectors", space="lagging") == 1
    assert value(samples, "recsite_embedding_missing_vectors", space="new-model") == 4
    assert value(samples, "recsite_encoder_space_info", space="lagging", active="True") == 1
    assert value(samples, "recsite_metrics_part_up", part="spaces") == 1


def test_state_is_cached_between_scrapes(make_space, make_items):
    space = make_space("cached", dim=16)
    make_items(2)
    assert value(scrape(), "recsite_embedding_missing_vectors", space="cached") == 2
    embedding.embed_items(space, list(Item.objects.values_list("pk", flat=True)))
    assert value(scrape(), "recsite_embedding_missing_vectors", space="cached") == 2  # cached
    monitoring.reset_caches()
    assert value(scrape(), "recsite_embedding_missing_vectors", space="cached") == 0


def test_worker_heartbeat_age_and_task_counts():
    from recommender.tasks import heartbeat

    samples = scrape()
    assert value(samples, "recsite_worker_heartbeat_age_seconds") == math.inf  # never seen
    name = "recommender.heartbeat"
    was = value(samples, "recsite_celery_tasks_total", task=name, state="SUCCESS") or 0
    heartbeat.apply()  # runs here, through Celery's tracer and its signals
    monitoring.reset_caches()
    samples = scrape()
    assert 0 <= value(samples, "recsite_worker_heartbeat_age_seconds") < 60
    [(labels, seen)] = samples["recsite_worker_last_seen_timestamp_seconds"]
    assert labels["worker"] and seen > 0
    assert value(samples, "recsite_celery_tasks_total", task=name, state="SUCCESS") == was + 1
    assert value(samples, "recsite_celery_task_duration_seconds_count", task=name) >= 1


def test_the_latest_ranker_and_the_queue_depths(settings, tmp_path):
    settings.RECSITE_DATA_DIR = tmp_path
    samples = scrape()
    assert value(samples, "recsite_ranker_enabled") == 0
    assert "recsite_ranker_info" not in samples
    n = len(FEATURES)
    path = learned.save(
        learned.LearnedScorer(
            kind="logistic",
            features=list(FEATURES),
            mean=np.zeros(n),
            std=np.ones(n),
            weights=np.ones(n),
            bias=0.0,
        )
    )
    settings.RECOMMENDER_USE_LEARNED_RANKER = True
    monitoring.reset_caches()
    samples = scrape()
    assert value(samples, "recsite_ranker_enabled") == 1
    assert value(samples, "recsite_ranker_info", version=path.stem, kind="logistic") == 1
    # The embedded Redis is the broker: both queues are measured.
    for queue in ("default", "embed"):
        assert value(samples, "recsite_celery_queue_length", queue=queue) >= 0


def test_online_ctr_per_scenario_and_variant(make_items):
    online_log.build(make_items)
    samples = scrape()
    ctr = "recsite_online_ctr_ratio"
    assert value(samples, ctr, scenario="home", variant="a") == pytest.approx(2 / 3)
    assert value(samples, ctr, scenario="home", variant="b") == pytest.approx(1 / 2)
    assert value(samples, ctr, scenario="cart", variant="") == pytest.approx(1 / 2)
    assert value(samples, "recsite_online_lists", scenario="home", variant="a") == 1
    assert value(samples, "recsite_online_conversion_ratio", scenario="home", variant="a") == 0.5


# --- gunicorn, two workers, one scrape ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_live_gunicorn_adds_up_its_workers_in_multiprocess_mode(tmp_path):
    """Each worker serves at most 10 requests (then gunicorn replaces it), so 30 counted
    requests in one scrape are the sum of several processes' files."""
    directory = tmp_path / "prometheus"
    port = _free_port()
    env = testing.environ(
        DJANGO_SETTINGS_MODULE="tests.settings",
        RECSITE_DATABASE_NAME=connection.settings_dict["NAME"],
        RECOMMENDER_METRICS_ENABLED="1",
        RECOMMENDER_METRICS_TOKEN=TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(directory),
    )
    directory.mkdir()
    (directory / "counter_999999999.db").write_bytes(b"")  # an earlier run's: removed
    base = f"http://127.0.0.1:{port}"

    def get(path: str, headers: dict | None = None, method: str = "GET") -> tuple[int, str]:
        request = urllib.request.Request(base + path, headers=headers or {}, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local
            return response.status, response.read().decode()

    def health_count() -> float:
        _, text = get("/metrics", {"Authorization": f"Bearer {TOKEN}"})
        samples = parse(text)
        # HEAD only: the harness's readiness probes are GETs, and on a slow machine one that
        # timed out may still be served (and counted) after ``before`` was read.
        return value(samples, "recsite_http_requests_total", endpoint="health", method="HEAD") or 0

    process = testing.start_gunicorn(
        env,
        tmp_path / "gunicorn.log",
        port=port,
        workers=2,
        extra=["-c", str(ROOT / "recsite" / "gunicorn.conf.py"), "--max-requests", "10"],
    )
    with testing.running(process):
        assert not (directory / "counter_999999999.db").exists()
        before = health_count()
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: get("/api/v1/health", method="HEAD"), range(30)))
        assert all(status == 200 for status, _ in answers)
        assert health_count() == before + 30
        pids = {path.stem.rsplit("_", 1)[-1] for path in directory.glob("histogram_*.db")}
        assert len(pids) >= 2, sorted(directory.iterdir())


@pytest.mark.worker
def test_a_celery_worker_counts_its_tasks_into_the_same_directory(tmp_path):
    """A worker given PROMETHEUS_MULTIPROC_DIR writes its task counters there, where the web
    processes' scrape reads them (a queue of its own, so no other worker takes the task)."""
    from prometheus_client import multiprocess

    from recsite.celery import app

    directory = tmp_path / "prometheus"
    env = testing.environ(
        DJANGO_SETTINGS_MODULE="tests.settings",
        RECSITE_DATABASE_NAME=connection.settings_dict["NAME"],
        PROMETHEUS_MULTIPROC_DIR=str(directory),
    )
    process = testing.start_worker(
        env, tmp_path / "worker.log", name=f"metrics-{tmp_path.name}", queues="metrics-test"
    )
    with testing.running(process):
        result = app.send_task("celery.accumulate", args=[1, 2], queue="metrics-test")
        assert result.get(timeout=60) == [1, 2]
        testing.wait_for(
            lambda: any(directory.glob("counter_*.db")), timeout=10, message="counter files"
        )
    collected = multiprocess.MultiProcessCollector(None, path=str(directory))
    samples = {}
    for family in collected.collect():
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    assert value(samples, "recsite_celery_tasks_total", task="celery.accumulate") == 1
    assert value(samples, "recsite_celery_tasks_total", state="SUCCESS") == 1
