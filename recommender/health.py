"""Whether the moving parts answer: a liveness probe anyone may call, and a detailed
report (counts, the active space, workers) for keys and staff."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection

from recommender.conf import conf
from recommender.models import Behaviour, EndUser, Item, WorkerHeartbeat


@dataclass
class HealthReport:
    database: str
    broker: str
    counts: dict[str, int] = field(default_factory=dict)
    active_space: dict | None = None
    worker_last_seen: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.database == "ok" and self.broker == "ok"


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any driver error means "down"; report it, do not raise
        return f"error: {exc.__class__.__name__}"


def _check_broker() -> str:
    from celery import current_app as app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:  # kombu raises many types; all mean "unreachable"
        return f"error: {exc.__class__.__name__}"


def live() -> bool:
    """The liveness probe: the database answers ``SELECT 1``. Nothing else is read, so any
    caller may ask as often as the throttle allows."""
    return _check_database() == "ok"


def _estimated_counts() -> dict[str, int]:
    """Row counts from the planner's statistics (``pg_class.reltuples``): free at any
    size, where ``COUNT(*)`` scans the table. An exact count for a table never analysed
    (reltuples -1) or small enough that the estimate may lag."""
    models = {"items": Item, "users": EndUser, "behaviours": Behaviour}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reltuples::bigint FROM pg_class WHERE relname = ANY(%s)",
            [[model._meta.db_table for model in models.values()]],
        )
        estimates = dict(cursor.fetchall())
    counts = {}
    for name, model in models.items():
        estimate = estimates.get(model._meta.db_table, -1)
        counts[name] = int(estimate) if estimate >= 10_000 else model.objects.count()
    return counts


_report_lock = threading.Lock()
_last_report: tuple[float, HealthReport] | None = None


def cached_check() -> HealthReport:
    """``check()``, reused for ``RECOMMENDER_HEALTH_CACHE_SECONDS`` per process (kept in
    memory, not Redis, so it still answers while the cache is down)."""
    global _last_report
    ttl = float(conf.HEALTH_CACHE_SECONDS)
    with _report_lock:
        if _last_report is not None and time.monotonic() - _last_report[0] < ttl:
            return _last_report[1]
        report = check()
        _last_report = (time.monotonic(), report)
        return report


def check() -> HealthReport:
    """Ping the database and the broker; count the main tables when the database answers."""
    report = HealthReport(database=_check_database(), broker=_check_broker())
    if report.database == "ok":
        report.counts = _estimated_counts()
        from recommender import spaces

        space = spaces.current_space()
        if space is not None:
            cover = spaces.coverage(space)
            report.active_space = {
                "name": space.name,
                "plugin": space.plugin,
                "dim": space.dim,
                "coverage": round(cover.ratio, 4),
                "stale": cover.stale,
            }
        latest = WorkerHeartbeat.objects.order_by("-seen_at").first()
        report.worker_last_seen = latest.seen_at if latest else None
    return report
