"""A cheap report on whether the moving parts answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection

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
    from recsite.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:  # kombu raises many types; all mean "unreachable"
        return f"error: {exc.__class__.__name__}"


def check() -> HealthReport:
    """Ping the database and the broker; count the main tables when the database answers."""
    report = HealthReport(database=_check_database(), broker=_check_broker())
    if report.database == "ok":
        report.counts = {
            "items": Item.objects.count(),
            "users": EndUser.objects.count(),
            "behaviours": Behaviour.objects.count(),
        }
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
