"""Recording behaviour events: idempotent by ``event_id``, the profile updated in the same
transaction (real-time personalisation)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from recommender import profiles, spaces
from recommender.models import Behaviour, EndUser, Item


class UnknownItem(LookupError):
    """An event names an item that does not exist."""

    def __init__(self, external_id: str, index: int | None = None):
        self.external_id = external_id
        self.index = index
        super().__init__(f"unknown item {external_id!r}")


@dataclass
class EventInput:
    """One behaviour as an application sends it (external ids)."""

    user: str
    kind: str
    item: str | None = None
    value: float | None = None
    text: str = ""
    context: dict = field(default_factory=dict)
    event_id: str | None = None
    occurred_at: datetime | None = None


@dataclass
class Recorded:
    behaviour: Behaviour
    created: bool
    profile_updated: bool


def _user(external_id: str) -> EndUser:
    pk = EndUser.objects.filter(external_id=external_id).values_list("pk", flat=True).first()
    if pk is not None:
        return EndUser(pk=pk, external_id=external_id)
    user, _ = EndUser.objects.get_or_create(external_id=external_id)
    return user


def _item_id(external_id: str) -> int:
    pk = Item.objects.filter(external_id=external_id).values_list("pk", flat=True).first()
    if pk is None:
        raise UnknownItem(external_id)
    return pk


def _insert(
    behaviour: Behaviour,
    *,
    user_external_id: str | None = None,
    item_external_id: str | None = None,
) -> bool:
    """INSERT the event; False when nothing was written: its ``event_id`` is already stored
    or, when looked up by external id here, the user or the item does not exist.

    ``ON CONFLICT DO NOTHING`` makes a duplicate, even a concurrent one, a no-op in one
    statement, with no pre-check and no savepoint. Given external ids, the user's and the
    item's keys are found in the same statement (``INSERT … SELECT``).
    """
    fields = [f for f in Behaviour._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    lookups = {
        "user_id": ("u", EndUser, user_external_id),
        "item_id": ("i", Item, item_external_id),
    }
    placeholders, values, sources, conditions, lookup_values = [], [], [], [], []
    for f in fields:
        alias, model, external_id = lookups.get(f.attname, (None, None, None))
        if external_id is not None:
            placeholders.append(f"{alias}.id")
            sources.append(f"{model._meta.db_table} {alias}")
            conditions.append(f"{alias}.external_id = %s")
            lookup_values.append(external_id)
            continue
        placeholders.append("%s")
        values.append(f.get_db_prep_save(f.pre_save(behaviour, True), connection))
    sql = f"INSERT INTO {Behaviour._meta.db_table} ({columns}) "
    if sources:
        sql += (
            f"SELECT {', '.join(placeholders)} FROM {', '.join(sources)} "
            f"WHERE {' AND '.join(conditions)}"
        )
        values += lookup_values
    else:
        sql += f"VALUES ({', '.join(placeholders)})"
    with connection.cursor() as cursor:
        cursor.execute(
            f"{sql} ON CONFLICT (event_id) DO NOTHING RETURNING id, user_id, item_id", values
        )
        row = cursor.fetchone()
    if row is None:
        return False
    behaviour.pk, behaviour.user_id, behaviour.item_id = row
    behaviour._state.adding = False
    return True


def record_event(data: EventInput) -> Recorded:
    """Store one event and fold it into the user's profile, once per ``event_id``.

    A repeated ``event_id`` (sequentially or concurrently) returns the stored event with
    ``created=False`` and leaves the profile alone. The usual case (a known user) costs
    three statements and the commit: the INSERT, the profile row with the item's vector
    (``SELECT … FOR UPDATE``), and its UPDATE.
    """
    space = spaces.serving_space()
    with transaction.atomic():
        behaviour = Behaviour(
            kind=data.kind,
            value=data.value,
            text=data.text,
            context=data.context,
            event_id=data.event_id or None,
            occurred_at=data.occurred_at or timezone.now(),
        )
        inserted = _insert(behaviour, user_external_id=data.user, item_external_id=data.item)
        if not inserted:  # a new user, an unknown item, or a repeated event_id
            if data.item is not None:
                behaviour.item_id = _item_id(data.item)
            behaviour.user = _user(data.user)
            inserted = _insert(behaviour)
        if not inserted:
            existing = Behaviour.objects.select_related("user", "item").get(event_id=data.event_id)
            return Recorded(existing, created=False, profile_updated=False)
        behaviour.user = EndUser(pk=behaviour.user_id, external_id=data.user)
        if data.item is not None:
            behaviour.item = Item(pk=behaviour.item_id, external_id=data.item)
        updated = False
        if space is not None:
            profiles.record(behaviour, space)
            updated = True
    return Recorded(behaviour, created=True, profile_updated=updated)


@dataclass
class BatchResult:
    created: int
    duplicates: int
    profiles_updated: int


def record_events(batch: list[EventInput]) -> BatchResult:
    """Store many events at once, all or nothing; duplicates (by ``event_id``) are skipped.

    Profiles of the users concerned are recomputed once each, not per event.
    """
    item_ids = {data.item for data in batch if data.item is not None}
    items = dict(Item.objects.filter(external_id__in=item_ids).values_list("external_id", "pk"))
    for index, data in enumerate(batch):
        if data.item is not None and data.item not in items:
            raise UnknownItem(data.item, index)
    seen_in_batch: set[str] = set()
    unique: list[EventInput] = []
    for data in batch:
        if data.event_id:
            if data.event_id in seen_in_batch:
                continue
            seen_in_batch.add(data.event_id)
        unique.append(data)
    stored = set(
        Behaviour.objects.filter(event_id__in=list(seen_in_batch)).values_list(
            "event_id", flat=True
        )
    )
    fresh = [data for data in unique if not data.event_id or data.event_id not in stored]
    now = timezone.now()
    with transaction.atomic():
        user_ext = {data.user for data in fresh}
        EndUser.objects.bulk_create(
            [EndUser(external_id=external_id) for external_id in user_ext], ignore_conflicts=True
        )
        users = dict(
            EndUser.objects.filter(external_id__in=user_ext).values_list("external_id", "pk")
        )
        rows = [
            Behaviour(
                user_id=users[data.user],
                item_id=items.get(data.item) if data.item is not None else None,
                kind=data.kind,
                value=data.value,
                text=data.text,
                context=data.context,
                event_id=data.event_id or None,
                occurred_at=data.occurred_at or now,
            )
            for data in fresh
        ]
        # ignore_conflicts: an event_id stored concurrently since the check is skipped too.
        Behaviour.objects.bulk_create(rows, ignore_conflicts=True)
        space = spaces.serving_space()
        touched: dict[int, int] = defaultdict(int)
        for row in rows:
            touched[row.user_id] += 1
        if space is not None:
            for user_id in touched:
                profiles.save(user_id, space, profiles.recompute(user_id, space))
    return BatchResult(
        created=len(rows),
        duplicates=len(batch) - len(rows),
        profiles_updated=len(touched) if space is not None else 0,
    )
