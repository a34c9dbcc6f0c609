"""Prometheus metrics at ``/metrics``: request rate and latency per endpoint and scenario,
events ingested, Celery tasks and queue depths, embedding lag, worker heartbeats, the
ranker in use and the online click-through rate per scenario and variant.

* Counters and histograms that requests and tasks update live in prometheus_client's
  registry: those here (HTTP, observed by ``recsite.metrics.RequestMetricsMiddleware``) and
  those in ``recommender.counters`` (events, Celery tasks).
* Gauges of the site's state are read at scrape time by :class:`StateCollector`, each part
  at most once per :data:`CACHE_SECONDS` per process and each database read under a
  statement timeout, so that a storm of scrapes costs the database next to nothing.
* With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn's config, recsite/gunicorn.conf.py, sets
  it; a Celery worker gets it from its environment) every process writes its counters to
  files there and a scrape adds up the files of all of them; without it, a scrape shows
  this process's counters only.

The endpoint is off unless ``RECOMMENDER_METRICS_ENABLED`` (404), and then answers only
``Authorization: Bearer <RECOMMENDER_METRICS_TOKEN>`` or an API key with the admin scope.
docs/operations.md shows a scrape config, the metrics that matter and alerts.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import REGISTRY, Collector

from recommender import apikeys, spaces
from recommender.conf import conf
from recommender.learning import online_metrics
from recommender.models import Scenario, WorkerHeartbeat
from recommender.serving import learned

logger = logging.getLogger(__name__)

# --- Requests (observed by the middleware in every web process) ------------------------------

REQUEST_DURATION = Histogram(
    "recsite_http_request_duration_seconds",
    "Time to answer an HTTP request, by URL name (not path), method, status and scenario",
    ["endpoint", "method", "status", "scenario"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
REQUESTS = Counter(
    "recsite_http_requests",
    "HTTP requests answered, by URL name (not path), method, status and scenario",
    ["endpoint", "method", "status", "scenario"],
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # the endpoint label of a path no URL pattern matches (404s)


def endpoint_label(request: HttpRequest) -> str:
    """The resolved URL's name (``user-recommendations``, ``admin:index``): a bounded set of
    values, where raw paths would carry ids and grow without end."""
    match = getattr(request, "resolver_match", None)
    return (match.view_name or UNMATCHED) if match is not None else UNMATCHED


def scenario_label(request: HttpRequest, response: HttpResponse) -> str:
    """The scenario of the request: the one its list was served under (as the response
    says, the default scenario for a request that names none), else its ``scenario``
    parameter if a scenario of that name exists, else ``""``. Never a free-form value."""
    data = getattr(response, "data", None)
    if isinstance(data, dict) and isinstance(data.get("scenario"), str):
        return data["scenario"]
    named = request.GET.get("scenario")
    if named and named in scenario_names():
        return named
    return ""


def observe_request(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    """Count one answered request and its duration."""
    labels = {
        "endpoint": endpoint_label(request),
        "method": request.method if request.method in _METHODS else "other",
        "status": str(response.status_code),
        "scenario": scenario_label(request, response),
    }
    REQUEST_DURATION.labels(**labels).observe(seconds)
    REQUESTS.labels(**labels).inc()


# --- Per-process caches ------------------------------------------------------------------------

CACHE_SECONDS = 10.0  # how long a part of the site's state is reused
ONLINE_CACHE_SECONDS = 60.0  # the day's CTR moves slowly and costs the most to read
STATEMENT_TIMEOUT_MS = 2000  # the longest one database read of a scrape may take
MAX_COUNT = 1_000_000  # missing and stale vectors are counted up to this (then it saturates)

_locks_lock = threading.Lock()
_locks: dict[str, threading.Lock] = {}
_cache: dict[str, tuple[float, Any]] = {}


def _lock_for(key: str) -> threading.Lock:
    with _locks_lock:
        return _locks.setdefault(key, threading.Lock())


def _cached(key: str, ttl: float, compute: Callable[[], Any]) -> Any:
    """``compute()``, reused for ``ttl`` seconds in this process; concurrent callers of one
    key wait for one computation instead of each running it. A failure is cached too (as
    :class:`_Failed`), so a database in trouble is asked once per ``ttl``, not per scrape."""
    with _lock_for(key):
        hit = _cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < ttl:
            return hit[1]
        try:
            value = compute()
        except Exception as exc:  # noqa: BLE001 - a scrape reports the part as down
            logger.warning("metrics: reading %s failed", key, exc_info=True)
            value = _Failed(exc)
        _cache[key] = (time.monotonic(), value)
        return value


class _Failed:
    def __init__(self, exc: Exception):
        self.exc = exc


def reset_caches() -> None:
    """Forget every cached part (tests; a scrape after it reads everything afresh)."""
    with _locks_lock:
        _cache.clear()


def scenario_names() -> frozenset[str]:
    """Names of the scenarios (cached: the middleware asks on requests naming one)."""
    names = _cached(
        "scenario-names",
        CACHE_SECONDS,
        lambda: frozenset(Scenario.objects.order_by("name").values_list("name", flat=True)[:1000]),
    )
    return frozenset() if isinstance(names, _Failed) else names


@contextmanager
def _bounded() -> Iterator[None]:
    """A transaction (a savepoint inside one) whose statements are cancelled after
    :data:`STATEMENT_TIMEOUT_MS`; the timeout is put back afterwards."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('statement_timeout')")
        before = cursor.fetchone()[0]
        cursor.execute(
            "SELECT set_config('statement_timeout', %s, true)", [f"{STATEMENT_TIMEOUT_MS}ms"]
        )
        yield
        # On an error the savepoint's rollback restores the timeout by itself.
        cursor.execute("SELECT set_config('statement_timeout', %s, true)", [before])


# --- The site's state, read at scrape time -----------------------------------------------------


def _read_spaces() -> list[dict]:
    """Each maintained (not retired) space: its identity, missing and stale vectors."""
    found = []
    with _bounded():
        for space in spaces.maintained_spaces().order_by("name")[:50]:
            missing = spaces.missing_items(space)[:MAX_COUNT].count()
            stale = spaces.stale_vectors(space).filter(item__is_active=True)[:MAX_COUNT].count()
            found.append(
                {
                    "space": space.name,
                    "plugin": space.plugin,
                    "dim": space.dim,
                    "status": space.status,
                    "active": space.is_active,
                    "missing": missing,
                    "stale": stale,
                }
            )
    return found


def _read_workers() -> dict:
    """The newest heartbeat, and each worker's heartbeat of the last day (at most 100)."""
    with _bounded():
        since = timezone.now() - timedelta(days=1)
        recent = list(
            WorkerHeartbeat.objects.filter(seen_at__gte=since)
            .order_by("-seen_at")
            .values_list("hostname", "seen_at")[:100]
        )
        newest = recent[0][1] if recent else None
        if newest is None:
            latest = WorkerHeartbeat.objects.order_by("-seen_at").values_list("seen_at").first()
            newest = latest[0] if latest else None
    return {"newest": newest, "recent": recent}


def _read_ranker() -> dict:
    path = learned.latest_path()
    if path is None:
        return {"path": None}
    kind = path.stem.rsplit("-", 1)[-1]
    return {"path": path, "version": path.stem, "kind": kind, "mtime": path.stat().st_mtime}


def _queue_names() -> list[str]:
    from celery import current_app

    names = {current_app.conf.task_default_queue or "celery"}
    routes = current_app.conf.task_routes or {}
    if isinstance(routes, dict):
        for route in routes.values():
            if isinstance(route, dict) and route.get("queue"):
                names.add(route["queue"])
    return sorted(names)


def _read_queues() -> dict[str, int] | None:
    """Messages waiting in each Celery queue (Redis lists, every priority), or None when
    the broker is not Redis."""
    from celery import current_app

    depths = {}
    with current_app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        if conn.transport.driver_type != "redis":
            return None
        channel = conn.default_channel
        client = channel.client
        for queue in _queue_names():
            steps = getattr(channel, "priority_steps", [0]) or [0]
            keys = {channel._q_for_pri(queue, step) for step in steps}
            depths[queue] = sum(int(client.llen(key)) for key in keys)
    return depths


def _read_online() -> list[dict]:
    """Yesterday-to-now figures per scenario and variant (lists served in the last day)."""
    with _bounded():
        rows = online_metrics.variants(days=1)
    return [
        {
            "scenario": row.scenario,
            "variant": row.variant,
            "lists": row.lists,
            "impressions": row.impressions,
            "clicks": row.clicks,
            "ctr": row.ctr.value,
            "conversion": row.conversion.value,
        }
        for row in rows[:500]
    ]


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels or [])


def _space_families(data: list[dict]) -> list[GaugeMetricFamily]:
    info = _gauge(
        "recsite_encoder_space_info",
        "Encoder spaces kept fresh (value 1): plugin, dimensions, status, active or not",
        ["space", "plugin", "dim", "status", "active"],
    )
    missing = _gauge(
        "recsite_embedding_missing_vectors",
        f"Active items with no vector in the space (counted up to {MAX_COUNT})",
        ["space"],
    )
    stale = _gauge(
        "recsite_embedding_stale_vectors",
        "Vectors of active items made from a text that has changed since "
        f"(counted up to {MAX_COUNT})",
        ["space"],
    )
    for row in data:
        info.add_metric(
            [row["space"], row["plugin"], str(row["dim"]), row["status"], str(row["active"])], 1
        )
        missing.add_metric([row["space"]], row["missing"])
        stale.add_metric([row["space"]], row["stale"])
    return [info, missing, stale]


def _worker_families(data: dict) -> list[GaugeMetricFamily]:
    now = timezone.now()
    age = _gauge(
        "recsite_worker_heartbeat_age_seconds",
        "Seconds since the newest Celery worker heartbeat (every 60 s; +Inf: never)",
    )
    newest = data["newest"]
    age.add_metric([], (now - newest).total_seconds() if newest else math.inf)
    seen = _gauge(
        "recsite_worker_last_seen_timestamp_seconds",
        "Each worker's last heartbeat (Unix time), for workers seen in the last day",
        ["worker"],
    )
    for hostname, seen_at in data["recent"]:
        seen.add_metric([hostname], seen_at.timestamp())
    return [age, seen]


def _ranker_families(data: dict) -> list[GaugeMetricFamily]:
    enabled = _gauge(
        "recsite_ranker_enabled",
        "1 when lists are ranked by the latest trained ranker (RECOMMENDER_USE_LEARNED_RANKER "
        "and a ranker file exists), else 0 (the fixed blend)",
    )
    enabled.add_metric([], 1 if (conf.USE_LEARNED_RANKER and data["path"]) else 0)
    families = [enabled]
    if data["path"]:
        info = _gauge(
            "recsite_ranker_info", "The latest trained ranker (value 1)", ["version", "kind"]
        )
        info.add_metric([data["version"], data["kind"]], 1)
        trained = _gauge(
            "recsite_ranker_trained_timestamp_seconds", "When the latest ranker was saved"
        )
        trained.add_metric([], data["mtime"])
        families += [info, trained]
    return families


def _queue_families(data: dict[str, int] | None) -> list[GaugeMetricFamily]:
    if data is None:
        return []
    depth = _gauge(
        "recsite_celery_queue_length", "Tasks waiting in each Celery queue (broker)", ["queue"]
    )
    for queue, n in data.items():
        depth.add_metric([queue], n)
    return [depth]


def _online_families(data: list[dict]) -> list[GaugeMetricFamily]:
    labels = ["scenario", "variant"]
    families = {
        "lists": _gauge("recsite_online_lists", 'Lists served in the last 24 h ("": none)', labels),
        "impressions": _gauge(
            "recsite_online_impressions", "Impressions reported for them", labels
        ),
        "clicks": _gauge("recsite_online_clicks", "Clicks naming them", labels),
        "ctr": _gauge(
            "recsite_online_ctr_ratio",
            "Click-through rate of the lists served in the last 24 h: clicks per impression "
            "(per item shown where none were reported)",
            labels,
        ),
        "conversion": _gauge(
            "recsite_online_conversion_ratio", "Purchases per click, same lists", labels
        ),
    }
    for row in data:
        for key, family in families.items():
            family.add_metric([row["scenario"], row["variant"]], row[key])
    return list(families.values())


# part name -> (cache seconds, read, families of what was read)
PARTS: dict[str, tuple[float, Callable[[], Any], Callable[[Any], list]]] = {
    "spaces": (CACHE_SECONDS, _read_spaces, _space_families),
    "workers": (CACHE_SECONDS, _read_workers, _worker_families),
    "ranker": (CACHE_SECONDS, _read_ranker, _ranker_families),
    "queues": (CACHE_SECONDS, _read_queues, _queue_families),
    "online": (ONLINE_CACHE_SECONDS, _read_online, _online_families),
}


class StateCollector(Collector):
    """Gauges of the site's state, read when scraped (cached per part, see ``PARTS``)."""

    def collect(self):
        up = _gauge(
            "recsite_metrics_part_up",
            "1 when this part of the scrape could be read (its figures are then present)",
            ["part"],
        )
        for part, (ttl, read, families) in PARTS.items():
            data = _cached(part, ttl, read)
            ok = not isinstance(data, _Failed)
            up.add_metric([part], 1 if ok else 0)
            if ok:
                yield from families(data)
        yield up


class _Scrape:
    """What one scrape exposes: the counters (this process's, or every process's files in
    multiprocess mode) and the state gauges."""

    def __init__(self, *collectors):
        self.collectors = collectors

    def collect(self):
        for collector in self.collectors:
            yield from collector.collect()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def scrape_collector() -> _Scrape:
    path = multiprocess_dir()
    counters = multiprocess.MultiProcessCollector(None, path=path) if path else REGISTRY
    return _Scrape(counters, StateCollector())


# --- The endpoint ----------------------------------------------------------------------------


def _refused(status: int, detail: str) -> HttpResponse:
    response = HttpResponse(detail + "\n", status=status, content_type="text/plain")
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def check_access(request: HttpRequest) -> HttpResponse | None:
    """None when the caller may scrape, else the 401/403 to answer."""
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() == "bearer" and credential:
        token = conf.METRICS_TOKEN
        if token and hmac.compare_digest(credential.encode(), str(token).encode()):
            return None
        return _refused(401, "invalid metrics token")
    plain = credential if scheme == "Api-Key" else request.headers.get("X-Api-Key", "")
    if plain:
        key = apikeys.verify(plain)
        if key is None:
            return _refused(401, "invalid or revoked API key")
        if not apikeys.allows(key, "admin"):
            return _refused(403, f"this API key has scope {key.scope!r}; 'admin' is needed")
        return None
    return _refused(401, "metrics need Authorization: Bearer <token> or an admin-scope API key")


@never_cache
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: the Prometheus text format (or OpenMetrics, by ``Accept``)."""
    if not conf.METRICS_ENABLED:
        raise Http404("metrics are off (RECOMMENDER_METRICS_ENABLED)")
    refused = check_access(request)
    if refused is not None:
        return refused
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(scrape_collector()), content_type=content_type)
