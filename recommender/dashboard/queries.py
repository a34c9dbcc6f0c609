"""What the operators' dashboard shows: counts, activity, coverage, queues, evaluations.

Every function here is a query or a command that returns a value; the views in
``recommender.dashboard.views`` only render what these return.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from django.db.models import Count, F, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from recommender import behaviour, spaces
from recommender.learning import online_metrics
from recommender.learning.reports import TABLE_METRICS
from recommender.models import (
    Behaviour,
    EndUser,
    EvaluationRun,
    Experiment,
    Item,
    WorkerHeartbeat,
)

QUEUES = ("default", "embed")
ACTIVITY_DAYS = 30


@dataclass(frozen=True)
class Counts:
    users: int
    items: int
    active_items: int
    behaviours: int


def counts() -> Counts:
    """How many users, items (all and active) and behaviours the site holds."""
    return Counts(
        users=EndUser.objects.count(),
        items=Item.objects.count(),
        active_items=Item.objects.filter(is_active=True).count(),
        behaviours=Behaviour.objects.count(),
    )


@dataclass(frozen=True)
class DayCount:
    day: date
    events: int


@dataclass(frozen=True)
class Activity:
    """Events per day, oldest first, with every day of the window present."""

    days: list[DayCount]

    @property
    def peak(self) -> int:
        return max((day.events for day in self.days), default=0)

    @property
    def total(self) -> int:
        return sum(day.events for day in self.days)


def activity(days: int = ACTIVITY_DAYS, now: datetime | None = None) -> Activity:
    """Behaviours per day over the last ``days`` days (in the site's time zone)."""
    today = timezone.localdate(now or timezone.now())
    first = today - timedelta(days=days - 1)
    per_day = dict(
        Behaviour.objects.annotate(day=TruncDate("occurred_at"))
        .filter(day__gte=first, day__lte=today)
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    window = [first + timedelta(days=n) for n in range(days)]
    return Activity([DayCount(day, per_day.get(day, 0)) for day in window])


@dataclass(frozen=True)
class SpaceCoverage:
    name: str
    plugin: str
    dim: int
    status: str
    is_active: bool
    coverage: spaces.Coverage

    @property
    def percent(self) -> float:
        return round(100.0 * self.coverage.ratio, 1)


def space_coverage() -> list[SpaceCoverage]:
    """Coverage and staleness of every maintained encoder space, the active one first."""
    return [
        SpaceCoverage(
            name=space.name,
            plugin=space.plugin,
            dim=space.dim,
            status=space.status,
            is_active=space.is_active,
            coverage=spaces.coverage(space),
        )
        for space in spaces.maintained_spaces().order_by("-is_active", "-created_at")
    ]


@dataclass(frozen=True)
class QueueDepth:
    name: str
    messages: int | None  # None when the broker did not answer
    error: str = ""


def queue_depths(names: Iterable[str] = QUEUES) -> list[QueueDepth]:
    """Messages waiting in each broker queue (all priority levels), or why it is unknown."""
    from celery import current_app as app

    names = list(names)
    try:
        with app.connection_for_read() as connection:
            channel = connection.default_channel
            client = channel.client
            # kombu's Redis transport keeps one list per priority step ("default",
            # "default\x06\x163", ...); a message waits in exactly one of them.
            steps = getattr(channel, "priority_steps", [0])
            return [
                QueueDepth(name, sum(client.llen(channel._q_for_pri(name, p)) for p in steps))
                for name in names
            ]
    except Exception as exc:  # kombu and redis-py raise many types; all mean "unknown"
        return [QueueDepth(name, None, exc.__class__.__name__) for name in names]


@dataclass(frozen=True)
class Heartbeat:
    hostname: str
    seen_at: datetime
    age_seconds: float


def last_heartbeat(now: datetime | None = None) -> Heartbeat | None:
    """The most recent worker heartbeat, with how long ago it was."""
    latest = WorkerHeartbeat.objects.order_by("-seen_at").first()
    if latest is None:
        return None
    age = ((now or timezone.now()) - latest.seen_at).total_seconds()
    return Heartbeat(latest.hostname, latest.seen_at, max(age, 0.0))


@dataclass(frozen=True)
class MetricRow:
    recommender: str
    values: list[float | None]


@dataclass(frozen=True)
class EvaluationSummary:
    run: EvaluationRun
    columns: list[str]
    rows: list[MetricRow]
    charts: list[str] = field(default_factory=list)


def latest_evaluation() -> EvaluationSummary | None:
    """The newest evaluation run: its overall metrics at one k, and its chart files."""
    run = EvaluationRun.objects.order_by("-created_at", "-pk").first()
    if run is None:
        return None
    overall = run.metrics.get("overall", {})
    present = {name for values in overall.values() for name in values}
    ks = sorted({int(k) for _, _, k in (n.rpartition("@") for n in present) if k.isdigit()})
    k = 10 if 10 in ks or not ks else ks[-1]
    columns = [f"{metric}@{k}" for metric in TABLE_METRICS if f"{metric}@{k}" in present]
    rows = [
        MetricRow(name, [values.get(column) for column in columns])
        for name, values in overall.items()
    ]
    return EvaluationSummary(run, columns, rows, [path.name for path in chart_files(run)])


def chart_files(run: EvaluationRun) -> list[Path]:
    """The PNG charts written into the run's report folder (those ``chart_path`` serves)."""
    if not run.report_dir or not Path(run.report_dir).is_dir():
        return []
    found = (chart_path(run, path.name) for path in sorted(Path(run.report_dir).glob("*.png")))
    return [path for path in found if path is not None]


def chart_path(run: EvaluationRun, name: str) -> Path | None:
    """The chart ``name`` of ``run``, only if it is a PNG directly inside its report folder."""
    if not run.report_dir or not name.endswith(".png"):
        return None
    folder = Path(run.report_dir).resolve()
    candidate = (folder / name).resolve()
    # resolve() follows ".." and symlinks, so a name cannot point out of the folder.
    if candidate.parent != folder or not candidate.is_file():
        return None
    return candidate


@dataclass(frozen=True)
class TopItem:
    external_id: str
    title: str
    category: str
    events: int
    engagement: float


def top_items(
    limit: int = 10, days: int = ACTIVITY_DAYS, now: datetime | None = None
) -> list[TopItem]:
    """Items with the most weighted engagement in the last ``days`` days.

    Weights are ``RECOMMENDER_BEHAVIOUR_WEIGHTS`` with a floor of 0.5, as for the
    popularity source, so the list matches what "popular" recommends.
    """
    since = (now or timezone.now()) - timedelta(days=days)
    weight = behaviour.popularity_weight_sql()
    rows = (
        Behaviour.objects.filter(
            occurred_at__gte=since, item__isnull=False, kind__in=behaviour.ENGAGED
        )
        .values("item_id")
        .annotate(
            external_id=F("item__external_id"),
            title=F("item__title"),
            category=F("item__category"),
            events=Count("pk"),
            engagement=Sum(weight),
        )
        .order_by("-engagement", "item_id")[:limit]
    )
    return [
        TopItem(r["external_id"], r["title"], r["category"], r["events"], r["engagement"])
        for r in rows
    ]


# --- Commands ----------------------------------------------------------------------------

# Dashboard button -> task in ``recommender.tasks``.
ACTIONS = {"reembed-stale": "refresh_stale_vectors", "evaluate": "evaluate"}


def enqueue(action: str) -> str:
    """Queue the task behind a dashboard button; returns the Celery task id."""
    from recommender import tasks

    return getattr(tasks, ACTIONS[action]).delay().id


@dataclass(frozen=True)
class TaskState:
    id: str
    state: str
    ready: bool
    result: object = None
    error: str = ""


def task_state(task_id: str) -> TaskState:
    """A queued task's state from the result backend (PENDING also means "unknown")."""
    from celery import current_app as app
    from celery.result import AsyncResult

    result = AsyncResult(task_id, app=app)
    state = result.state
    if state == "FAILURE":
        return TaskState(task_id, state, True, error=repr(result.result))
    if state == "SUCCESS":
        return TaskState(task_id, state, True, result.result)
    return TaskState(task_id, state, state == "REVOKED")


# Positions the dashboard's position curve charts (the API gives them all).
CURVE_POSITIONS = 20


def _rate_text(rate: online_metrics.Rate) -> str:
    return f"{rate.value:.1%} [{rate.low:.1%}, {rate.high:.1%}]"


def _permille(rate: online_metrics.Rate) -> int:
    return round(rate.value * 1000)


def online(days: int = 14) -> dict:
    """The dashboard's online section (``learning.online_metrics``): served lists per
    scenario and day with their CTR, the CTR per candidate source and per position (the
    position curve), the variants of experiments, the coverage of what was shown per
    scenario, and the running experiments."""
    rows = []
    for row in online_metrics.scenario_days(days):
        rows.append(
            {
                "day": row.day,
                "scenario": row.scenario,
                "lists": row.lists,
                "impressions": row.impressions,
                "clicks": row.clicks,
                "purchases": row.purchases,
                "ctr_text": _rate_text(row.ctr),
                "ctr_pct": _permille(row.ctr),
            }
        )
    sources = [
        {
            "source": row.source,
            "shown": row.shown,
            "impressions": row.impressions,
            "clicks": row.clicks,
            "ctr_text": _rate_text(row.ctr),
            "ctr_pct": _permille(row.ctr),
        }
        for row in online_metrics.sources(days)
    ]
    positions = [
        {
            "position": row.position,
            "shown": row.shown,
            "impressions": row.impressions,
            "clicks": row.clicks,
            "ctr_text": _rate_text(row.ctr),
            "ctr_pct": _permille(row.ctr),
        }
        for row in online_metrics.position_curve(days)[:CURVE_POSITIONS]
    ]
    variants = [
        {
            "scenario": row.scenario,
            "variant": row.variant,
            "lists": row.lists,
            "impressions": row.impressions,
            "clicks": row.clicks,
            "purchases": row.purchases,
            "ctr_text": _rate_text(row.ctr),
            "conversion_text": _rate_text(row.conversion),
        }
        for row in online_metrics.variants(days)
        if row.variant  # lists served in an experiment
    ]
    coverage = [
        {
            "scenario": row.scenario,
            "lists": row.lists,
            "items_shown": row.items_shown,
            "active_items_shown": row.active_items_shown,
            "active_items": row.active_items,
            "percent": round(100.0 * row.coverage, 1),
        }
        for row in online_metrics.coverage(days)
    ]
    running = Experiment.objects.filter(is_running=True).select_related("scenario")
    return {
        "days": days,
        "rows": rows,
        "peak_pct": max((row["ctr_pct"] for row in rows), default=0) or 1,
        "sources": sources,
        "source_peak_pct": max((row["ctr_pct"] for row in sources), default=0) or 1,
        "positions": positions,
        "position_peak_pct": max((row["ctr_pct"] for row in positions), default=0) or 1,
        "position_peak_text": (
            f"{max((row['ctr_pct'] for row in positions), default=0) / 1000:.1%}"
        ),
        "variants": variants,
        "coverage": coverage,
        "experiments": list(running),
    }
