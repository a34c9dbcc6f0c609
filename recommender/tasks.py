"""Celery tasks: thin wrappers that take ids, call the domain modules, and are idempotent.

Model-bound work (``recommender.embed_items``) is routed to the ``embed`` queue, so GPU
workers can take only that queue; everything else goes to ``default``.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from recommender import spaces
from recommender.conf import conf
from recommender.models import Behaviour, EncoderSpace, EndUser, Item, WorkerHeartbeat
from recommender.spaces import embedding

logger = logging.getLogger(__name__)

# Transient failures worth retrying: the database restarting or a dropped connection.
_RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(bind=True, name="recommender.heartbeat")
def heartbeat(self) -> dict:
    """Record that this worker is alive and sees the database; return what it sees."""
    hostname = self.request.hostname or "unknown"
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"seen_at": timezone.now()}
    )
    return {
        "hostname": hostname,
        "items": Item.objects.count(),
        "users": EndUser.objects.count(),
        "behaviours": Behaviour.objects.count(),
    }


@shared_task(name="recommender.embed_items", acks_late=True, **_RETRY)
def embed_items(space_id: int, item_ids: list[int], force: bool = False) -> dict:
    """Encode items into a space and upsert their vectors (skips fresh ones unless forced)."""
    space = EncoderSpace.objects.filter(pk=space_id).first()
    if space is None or space.status == "retired":
        return {"embedded": 0, "skipped": len(item_ids), "space": space_id}
    report = embedding.embed_items(space, item_ids, force=force)
    if space.status == "building":
        spaces.mark_ready_if_complete(space)
    return {"embedded": report.embedded, "skipped": report.skipped, "space": space_id}


def _enqueue(space: EncoderSpace, item_ids, *, force: bool = False) -> int:
    queued = 0
    for batch in embedding.batches(item_ids):
        embed_items.delay(space.pk, batch, force)
        queued += len(batch)
    return queued


@shared_task(name="recommender.build_space", acks_late=True, **_RETRY)
def build_space(space_id: int) -> dict:
    """Queue every item that lacks a fresh vector in one space (a new space, or a refresh)."""
    space = EncoderSpace.objects.get(pk=space_id)
    queued = _enqueue(space, list(spaces.items_needing_vectors(space)))
    if not queued:
        spaces.mark_ready_if_complete(space)
    return {"space": space.name, "queued": queued}


@shared_task(name="recommender.refresh_stale_vectors", acks_late=True, **_RETRY)
def refresh_stale_vectors() -> dict:
    """Find missing and stale vectors in every maintained space by hash, and queue them."""
    queued = {}
    for space in spaces.maintained_spaces():
        queued[space.name] = _enqueue(space, list(spaces.items_needing_vectors(space)))
        if not queued[space.name]:
            spaces.mark_ready_if_complete(space)
    return queued


@shared_task(name="recommender.reembed_space", acks_late=True, **_RETRY)
def reembed_space(space_id: int | None = None) -> dict:
    """Re-encode every active item of a space (default: the active one), fresh or not."""
    space = EncoderSpace.objects.get(pk=space_id) if space_id else spaces.active_space()
    ids = list(Item.objects.filter(is_active=True).order_by("pk").values_list("pk", flat=True))
    return {"space": space.name, "queued": _enqueue(space, ids, force=True)}


def enqueue_item_embeddings(item_ids: list[int]) -> None:
    """Queue items for every maintained space; a broker outage only logs (beat catches up)."""
    try:
        for space in spaces.maintained_spaces():
            _enqueue(space, item_ids)
    except Exception:  # kombu raises many types; the periodic refresh will pick them up
        logger.warning("could not queue embeddings for %d items", len(item_ids), exc_info=True)


@shared_task(name="recommender.refresh_cooccurrence", acks_late=True, **_RETRY)
def refresh_cooccurrence() -> dict:
    """Refresh the item-to-item co-occurrence table from the behaviour log: only the rows
    that events since the last refresh changed, and the whole table once a day
    (``cooccurrence.scheduled_refresh``)."""
    from recommender.serving import cooccurrence

    return cooccurrence.scheduled_refresh()


@shared_task(name="recommender.refresh_popularity", **_RETRY)
def refresh_popularity(names: list[str] | None = None) -> dict:
    """Recompute the live popular and trending tables (asked for by the first request that
    finds them older than RECOMMENDER_POPULARITY_REFRESH_SECONDS); seconds per table."""
    from recommender.serving import popularity

    return popularity.refresh_live(names)


@shared_task(name="recommender.refresh_lists", **_RETRY)
def refresh_lists(user_id: int) -> dict:
    """Compute ahead the lists a user asked for lately, after an event of theirs
    (``RECOMMENDER_LIST_REFRESH_SECONDS``; ``serving.list_cache.refresh``)."""
    from recommender.serving import list_cache

    return {"user": user_id, "computed": list_cache.refresh(user_id)}


@shared_task(name="recommender.flush_served_lists", acks_late=True, **_RETRY)
def flush_served_lists() -> dict:
    """Write the served lists queued in Redis to the database (beat: every 5 seconds)."""
    from recommender.serving import served_lists

    return {"written": served_lists.drain()}


@shared_task(name="recommender.expire_behaviours", acks_late=True, **_RETRY)
def expire_behaviours(batch: int = 10_000) -> dict:
    """Delete events older than ``RECOMMENDER_BEHAVIOUR_RETENTION_DAYS``, in batches, when
    ``RECOMMENDER_DELETE_EXPIRED_BEHAVIOURS`` is on (deleting history is never a default:
    expired events already stop counting without it)."""
    from recommender.behaviour import retention_start

    start = retention_start()
    if start is None or not conf.DELETE_EXPIRED_BEHAVIOURS:
        return {"deleted": 0, "enabled": False}
    deleted = 0
    while True:
        ids = list(
            Behaviour.objects.filter(occurred_at__lt=start).values_list("pk", flat=True)[:batch]
        )
        if not ids:
            return {"deleted": deleted, "enabled": True}
        deleted += Behaviour.objects.filter(pk__in=ids).delete()[0]


@shared_task(name="recommender.index_attributes", acks_late=True, **_RETRY)
def index_attributes() -> dict:
    """Build the expression indexes of indexed number and timestamp attributes (without
    locking the item table; an index that exists is left as it is)."""
    from django.db import connection

    from recommender import attributes

    statements = attributes.index_statements()
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    return {"indexes": len(statements)}


@shared_task(name="recommender.recompute_profiles", acks_late=True, **_RETRY)
def recompute_profiles(user_ids: list[int] | None = None) -> dict:
    """Rebuild stored profiles exactly from the log (drift from incremental updates, a new
    active space). Without ids: every user, fanned out in batches of 500."""
    from recommender.serving import profiles

    kept = spaces.profile_spaces()
    if not kept:
        return {"users": 0}
    if user_ids is None:
        ids = list(EndUser.objects.order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(ids), 500):
            recompute_profiles.delay(ids[start : start + 500])
        return {"queued": len(ids)}
    # Under each user's profile lock (see profiles.lock_users): an event recorded meanwhile
    # is either in the log read here or folded in after this write, never lost.
    for space in kept:  # the active space and those scenarios serve from
        users = profiles.rebuild(user_ids, space)
    return {"users": users}


@shared_task(name="recommender.forget_user", acks_late=True, **_RETRY)
def forget_user(user_id: int) -> dict:
    """Forget a user whose history is too long to delete within a web request (the API
    queues it); safe to run twice: a user already gone is a no-op."""
    from recommender.ingest import privacy

    deleted = privacy.forget_user_by_pk(user_id)
    return {"user": user_id, "forgotten": deleted is not None, "deleted": deleted or {}}


@shared_task(name="recommender.train_ranker", acks_late=True, **_RETRY)
def train_ranker(kind: str | None = None) -> dict:
    """Retrain the learned ranker from the behaviour log (serving picks up the new file)."""
    from recommender.learning import ranker

    try:
        # The setup measured in docs/evaluation.md: 3 cases per user, every other
        # candidate of the pool a negative; kind and loss come from settings.
        report = ranker.train_and_save(kind=kind, max_users=1000, cases_per_user=3, negatives=None)
    except ValueError as exc:  # not enough data yet: nothing to do, not a failure
        return {"trained": False, "reason": str(exc)}
    return {
        "trained": True,
        "activated": report.activated,
        "path": str(report.path),
        "examples": report.examples,
        "validation": report.validation,
    }


@shared_task(name="recommender.evaluate", acks_late=True, **_RETRY)
def evaluate(max_users: int = 200, k: list[int] | None = None) -> dict:
    """Re-run the leave-one-out evaluation and store the run, so a drop shows in the admin."""
    from recommender.learning import evaluation, reports
    from recommender.serving import learned

    cases = evaluation.leave_one_out(max_users=max_users)
    if not cases:
        return {"run": None, "reason": "no users with history"}
    report = evaluation.evaluate(
        cases,
        protocol="leave-one-out by time",
        ks=k or [10],
        recommenders=evaluation.baselines(learned.load_latest_scorer()),
    )
    run, _ = reports.record(report, {"max_users": max_users, "k": k or [10], "source": "beat"})
    return {"run": run.pk, "ndcg@10": run.headline()}


@shared_task(name="recommender.train_behaviour_models", acks_late=True, **_RETRY)
def train_behaviour_models(models: list[str] | None = None) -> dict:
    """Retrain the behaviour models (EASE, ALS, SASRec) from the behaviour log; serving
    picks up the new files. Safe to run twice: each run saves a newer version."""
    from recommender.learning import behaviour_models

    try:
        trained = behaviour_models.train_and_save_all(
            tuple(models) if models else behaviour_models.NAMES
        )
    except ValueError as exc:  # no behaviours yet: nothing to do, not a failure
        return {"trained": [], "reason": str(exc)}
    return {
        "trained": [model.name for model in trained],
        "paths": {model.name: str(model.report.path) for model in trained},
        "validation": {model.name: model.report.validation for model in trained},
    }
