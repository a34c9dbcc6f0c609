"""Celery tasks: thin wrappers that take ids and call the domain modules."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from recommender.models import Behaviour, EndUser, Item, WorkerHeartbeat


@shared_task(bind=True, name="recommender.heartbeat", ignore_result=False)
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
