"""Prometheus counters that code low in the layers increments: events ingested (by
``recommender.ingest.events``) and Celery tasks run (through Celery's signals).

Only ``prometheus_client`` and ``celery`` are imported, nothing of Django, so the ingest
layer and the Celery app module (before Django is set up) may import it. The metrics go
to prometheus_client's default registry, or, when ``PROMETHEUS_MULTIPROC_DIR`` is set
before this process imports prometheus_client, to that directory's per-process files,
which ``recommender.monitoring`` adds up at each scrape (docs/operations.md).
"""

from __future__ import annotations

import os
import time
from collections import Counter as Tally
from collections.abc import Iterable

# A missing directory would make the first increment fail; create it (gunicorn's config
# does the same for the web processes).
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from prometheus_client import Counter, Histogram  # noqa: E402  (after the directory exists)

EVENTS_INGESTED = Counter(
    "recsite_events_ingested",
    "Behaviour events stored (repeats of a stored event_id not counted), by kind",
    ["kind"],
)
CELERY_TASKS = Counter(
    "recsite_celery_tasks",
    "Celery tasks finished in the workers, by task name and final state "
    "(SUCCESS, FAILURE, RETRY, REVOKED …)",
    ["task", "state"],
)
CELERY_TASK_DURATION = Histogram(
    "recsite_celery_task_duration_seconds",
    "Wall time of Celery tasks in the workers, by task name",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)


def events_ingested(kinds: Iterable[str]) -> None:
    """Count stored events, one kind per event (``events_ingested([b.kind])``)."""
    for kind, n in Tally(kinds).items():
        EVENTS_INGESTED.labels(kind=kind).inc(n)


# --- Celery tasks ----------------------------------------------------------------------------

_started: dict[str, float] = {}


def _task_prerun(task_id=None, **_kwargs) -> None:
    if task_id:
        _started[task_id] = time.monotonic()


def _task_postrun(task_id=None, task=None, state=None, **_kwargs) -> None:
    name = getattr(task, "name", None) or "unknown"
    CELERY_TASKS.labels(task=name, state=state or "UNKNOWN").inc()
    started = _started.pop(task_id, None) if task_id else None
    if started is not None:
        CELERY_TASK_DURATION.labels(task=name).observe(time.monotonic() - started)


def track_celery_tasks() -> None:
    """Count every task a worker of this process runs (recsite/celery.py calls it once)."""
    from celery.signals import task_postrun, task_prerun

    task_prerun.connect(_task_prerun, weak=False, dispatch_uid="recsite-metrics-prerun")
    task_postrun.connect(_task_postrun, weak=False, dispatch_uid="recsite-metrics-postrun")
