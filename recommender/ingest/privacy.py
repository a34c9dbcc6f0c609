"""Everything stored about one end user: export it, or forget it.

Forgetting deletes the user, every row that names them (their behaviours and profiles
cascade) and the admin's log entries about those rows, whose ``object_repr`` holds the
external id and the start of search texts. A tombstone (the SHA-256 of the external id)
stays for ``RECOMMENDER_FORGET_GRACE_SECONDS``, so that an event still in flight (a
client retry, a queued batch, an import) does not silently recreate the user.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from celery import current_app
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import CharField, QuerySet
from django.db.models.functions import Cast
from django.utils import timezone

from recommender.conf import conf
from recommender.models import Behaviour, EndUser, ForgottenUser, ServedList, UserProfile
from recommender.serving import list_cache, profiles

# A long history is deleted this many behaviours per transaction before the final,
# short one: the user's lock is not held for the whole delete.
DELETE_CHUNK = 10_000

FORGET_TASK = "recommender.forget_user"


def export_user(user: EndUser) -> dict:
    """All rows that name the user, as plain data."""
    return {
        "user": {
            "id": user.external_id,
            "attributes": user.attributes,
            "created_at": user.created_at.isoformat(),
        },
        "behaviours": [
            {
                "event_id": b.event_id,
                "item": b.item.external_id if b.item else None,
                "kind": b.kind,
                "value": b.value,
                "text": b.text,
                "context": b.context,
                "occurred_at": b.occurred_at.isoformat(),
            }
            for b in Behaviour.objects.filter(user=user).select_related("item")
        ],
        "profiles": [
            {"space": p.space.name, "events": p.events, "updated_at": p.updated_at.isoformat()}
            for p in UserProfile.objects.filter(user=user).select_related("space")
        ],
        "served_lists": [
            {
                "recommendation_id": served.id.hex,
                "endpoint": served.endpoint,
                "scenario": served.scenario,
                "items": served.items,
                "context": served.context,
                "served_at": served.served_at.isoformat(),
            }
            for served in ServedList.objects.filter(user=user)
        ],
    }


def id_hash(external_id: str) -> str:
    """The tombstone key of an external id (SHA-256, hex)."""
    return hashlib.sha256(external_id.encode("utf-8", "surrogatepass")).hexdigest()


def recently_forgotten(external_ids: Iterable[str]) -> set[str]:
    """Those of ``external_ids`` whose user was forgotten within the grace period."""
    by_hash = {id_hash(external_id): external_id for external_id in set(external_ids)}
    if not by_hash:
        return set()
    since = timezone.now() - timedelta(seconds=conf.FORGET_GRACE_SECONDS)
    hashes = ForgottenUser.objects.filter(id_hash__in=list(by_hash), forgotten_at__gte=since)
    return {by_hash[h] for h in hashes.values_list("id_hash", flat=True)}


def clear_tombstone(external_id: str) -> None:
    """Let events recreate this id again (an explicit ``POST users`` re-registers it)."""
    ForgottenUser.objects.filter(id_hash=id_hash(external_id)).delete()


@dataclass
class ForgetOutcome:
    """What a forget request did: done now (with counts per model), or queued."""

    queued: bool
    deleted: dict[str, int] = field(default_factory=dict)


def forget(user: EndUser) -> ForgetOutcome:
    """Forget ``user`` now, or, past ``RECOMMENDER_FORGET_INLINE_LIMIT`` behaviours, queue
    the ``recommender.forget_user`` task (a long history would outlast a web request)."""
    limit = conf.FORGET_INLINE_LIMIT
    if Behaviour.objects.filter(user=user).values("pk")[limit : limit + 1].exists():
        # By name: ingest sits below the tasks module (recommender.tasks.forget_user).
        user_id = user.pk
        transaction.on_commit(lambda: current_app.tasks[FORGET_TASK].delay(user_id))
        return ForgetOutcome(queued=True)
    return ForgetOutcome(queued=False, deleted=forget_user(user))


@transaction.atomic
def forget_user(user: EndUser) -> dict[str, int]:
    """Delete the user and every row that names them; returns counts per model.

    The user's profile lock and then the user row are locked first: an event being
    recorded for them finishes before, or fails its foreign key check at commit and is
    retried (then refused by the tombstone), rather than leaving a row behind.
    """
    profiles.lock_users([user.pk])
    locked = EndUser.objects.select_for_update().filter(pk=user.pk).first()
    if locked is None:  # forgotten concurrently
        return {}
    deleted = {"LogEntry": _delete_log_entries(locked)}
    list_cache.forget_user(user.pk)
    _, per_model = locked.delete()  # behaviours and profiles cascade
    deleted.update({label.split(".")[-1]: count for label, count in per_model.items()})
    now = timezone.now()
    ForgottenUser.objects.update_or_create(
        id_hash=id_hash(locked.external_id), defaults={"forgotten_at": now}
    )
    # Tombstones past the grace period protect nothing any more: prune them on the way.
    grace = timedelta(seconds=conf.FORGET_GRACE_SECONDS)
    ForgottenUser.objects.filter(forgotten_at__lt=now - grace).delete()
    return deleted


def forget_user_by_pk(user_id: int) -> dict[str, int] | None:
    """Forget a user with a long history (the queued path); None if already gone.

    Behaviours are deleted in chunks of ``DELETE_CHUNK``, each its own transaction, then
    ``forget_user`` removes the rest. Safe to run twice.
    """
    user = EndUser.objects.filter(pk=user_id).first()
    if user is None:
        return None
    removed = 0
    table = Behaviour._meta.db_table
    behaviour_type = ContentType.objects.get_for_model(Behaviour)
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM {table} WHERE user_id = %s ORDER BY id LIMIT %s",
                [user_id, DELETE_CHUNK],
            )
            ids = [row[0] for row in cursor.fetchall()]
            if not ids:
                break
            LogEntry.objects.filter(
                content_type=behaviour_type, object_id__in=[str(pk) for pk in ids]
            ).delete()
            cursor.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", [ids])
            removed += cursor.rowcount
    deleted = forget_user(user)
    if not deleted:
        return None
    deleted["Behaviour"] = deleted.get("Behaviour", 0) + removed
    return deleted


def _delete_log_entries(user: EndUser) -> int:
    """Delete the admin log entries about the user, their behaviours and profiles."""
    types = ContentType.objects.get_for_models(EndUser, Behaviour, UserProfile)

    def ids_of(model) -> QuerySet:
        # LogEntry.object_id is text: compare with the pks cast to text, in SQL.
        rows = model.objects.filter(user=user).annotate(key=Cast("pk", CharField()))
        return rows.values("key")

    count = 0
    for model, object_ids in (
        (EndUser, [str(user.pk)]),
        (Behaviour, ids_of(Behaviour)),
        (UserProfile, ids_of(UserProfile)),
    ):
        count += LogEntry.objects.filter(
            content_type=types[model], object_id__in=object_ids
        ).delete()[0]
    return count
