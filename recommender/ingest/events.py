"""Recording behaviour events: idempotent per user by ``event_id``, the profile updated in
the same transaction (real-time personalisation).

An ``event_id`` is the client's retry key *for one user*: two users may use the same id,
a repeat returns that user's stored event (never another user's), and a repeat whose
payload differs is refused (:class:`EventConflict`), since silently keeping one of two
different events would lose data. Events for a user forgotten within the grace period are
refused (:class:`UserForgotten`) instead of recreating them.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime

import psycopg.errors
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from recommender import counters, spaces
from recommender.behaviour import SIGNALLESS
from recommender.ingest import privacy
from recommender.models import Behaviour, EndUser, Item
from recommender.serving import list_cache, profiles


class UnknownItem(LookupError):
    """An event names an item that does not exist."""

    def __init__(self, external_id: str, index: int | None = None):
        self.external_id = external_id
        self.index = index
        super().__init__(f"unknown item {external_id!r}")


class EventConflict(ValueError):
    """An ``event_id`` this user already used, sent again with a different payload."""

    def __init__(self, event_id: str, differing: list[str], index: int | None = None):
        self.event_id = event_id
        self.differing = differing
        self.index = index
        where = f"events[{index}]: " if index is not None else ""
        super().__init__(
            f"{where}event_id {event_id!r} was already used by this user for a different event "
            f"(it differs in {', '.join(differing)}); nothing was stored. A retry must repeat "
            "the event exactly; a new event needs a new event_id."
        )


class UserForgotten(LookupError):
    """An event for a user who was forgotten (deleted) within the grace period."""

    def __init__(self, external_id: str):
        self.external_id = external_id
        super().__init__(
            "this user was recently forgotten at the site's request, so events for them are "
            "not recorded; to register the id again, create the user explicitly (POST users)"
        )


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
    recommendation_id: uuid.UUID | None = None  # the served list it came from
    position: int | None = None  # 1-based, in that list


@dataclass
class Recorded:
    behaviour: Behaviour
    created: bool
    profile_updated: bool


# The fields a repeated event must match; occurred_at only when the repeat names it.
PAYLOAD_FIELDS = ("item", "kind", "value", "text", "context")


def differing_fields(sent: EventInput, stored: EventInput) -> list[str]:
    """The payload fields in which a repeat (``sent``) differs from the stored event."""
    names = PAYLOAD_FIELDS + (("occurred_at",) if sent.occurred_at is not None else ())
    return [name for name in names if _field(sent, name) != _field(stored, name)]


def _field(event: EventInput, name: str):
    value = getattr(event, name)
    if name == "text":
        return value or ""
    if name == "context":
        return value or {}
    return value


def _as_input(behaviour: Behaviour, user: str) -> EventInput:
    return EventInput(
        user=user,
        kind=behaviour.kind,
        item=behaviour.item.external_id if behaviour.item_id is not None else None,
        value=behaviour.value,
        text=behaviour.text,
        context=behaviour.context,
        event_id=behaviour.event_id,
        occurred_at=behaviour.occurred_at,
    )


def _user_id(external_id: str) -> int | None:
    return EndUser.objects.filter(external_id=external_id).values_list("pk", flat=True).first()


def _new_user(external_id: str) -> int:
    """Create the user an event names, unless they were recently forgotten."""
    if privacy.recently_forgotten([external_id]):
        raise UserForgotten(external_id)
    user, _ = EndUser.objects.get_or_create(external_id=external_id)
    return user.pk


def _repeat(user_id: int, data: EventInput) -> Recorded | None:
    """The answer to a repeated ``(user, event_id)``: the stored event, or EventConflict."""
    stored = (
        Behaviour.objects.select_related("user", "item")
        .filter(user_id=user_id, event_id=data.event_id)
        .first()
    )
    if stored is None:
        return None
    differing = differing_fields(data, _as_input(stored, data.user))
    if differing:
        raise EventConflict(data.event_id, differing)
    return Recorded(stored, created=False, profile_updated=False)


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
    """INSERT the event; False when nothing was written: the user already stored its
    ``event_id`` or, when looked up by external id here, the user or the item does not exist.

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
            f"{sql} ON CONFLICT (user_id, event_id) DO NOTHING RETURNING id, user_id, item_id",
            values,
        )
        row = cursor.fetchone()
    if row is None:
        return False
    behaviour.pk, behaviour.user_id, behaviour.item_id = row
    behaviour._state.adding = False
    return True


def record_event(data: EventInput) -> Recorded:
    """Store one event and fold it into the user's profile, once per (user, ``event_id``).

    A repeat (sequential or concurrent) returns the user's stored event with
    ``created=False`` and leaves the profile alone; a repeat with a different payload
    raises :class:`EventConflict` and stores nothing. The usual case (a known user) costs
    four statements and the commit: the INSERT, the user's profile lock, the profile row
    with the item's vector (``SELECT … FOR UPDATE``), and its UPDATE.
    """
    try:
        return _record_event(data)
    except IntegrityError as exc:
        if not isinstance(exc.__cause__, psycopg.errors.ForeignKeyViolation):
            raise
        # The user was forgotten while this event was being stored (the foreign key is
        # checked at commit). Once more: now the user is gone, and the tombstone decides.
        return _record_event(data)


def _record_event(data: EventInput) -> Recorded:
    profile_spaces = spaces.profile_spaces()
    with transaction.atomic():
        behaviour = Behaviour(
            kind=data.kind,
            value=data.value,
            text=data.text,
            context=data.context,
            event_id=data.event_id or None,
            occurred_at=data.occurred_at or timezone.now(),
            recommendation_id=data.recommendation_id,
            position=data.position,
        )
        inserted = _insert(behaviour, user_external_id=data.user, item_external_id=data.item)
        if not inserted:  # a repeated event_id, a new user, or an unknown item
            user_id = _user_id(data.user)
            # A repeat is resolved first: it must neither fail on nor create anything.
            if user_id is not None and behaviour.event_id:
                repeat = _repeat(user_id, data)
                if repeat is not None:
                    return repeat
            if data.item is not None:
                behaviour.item_id = _item_id(data.item)
            behaviour.user_id = user_id if user_id is not None else _new_user(data.user)
            inserted = _insert(behaviour)
            if not inserted:  # the same (user, event_id) was stored concurrently
                repeat = _repeat(behaviour.user_id, data)
                if repeat is None:  # and deleted again since: the user was forgotten
                    raise UserForgotten(data.user)
                return repeat
        behaviour.user = EndUser(pk=behaviour.user_id, external_id=data.user)
        if data.item is not None:
            behaviour.item = Item(pk=behaviour.item_id, external_id=data.item)
        updated = False
        if behaviour.kind not in SIGNALLESS:
            for space in profile_spaces:
                profiles.record(behaviour, space)
                updated = True
        if updated:
            list_cache.after_events([behaviour.user_id])
    counters.events_ingested([behaviour.kind])
    return Recorded(behaviour, created=True, profile_updated=updated)


@dataclass
class BatchResult:
    """What ``record_events`` did with a batch."""

    created: int
    duplicates: int
    profiles_updated: int
    forgotten: int = 0


def record_events(batch: list[EventInput]) -> BatchResult:
    """Store many events at once, all or nothing, and fold them into their users' profiles.

    Repeats of a stored or an earlier (user, ``event_id``) with the same payload count
    once (``duplicates``); a repeat with a different payload raises
    :class:`EventConflict` naming its index, and nothing is stored. Events of users
    forgotten within the grace period are skipped (``forgotten``). Profiles are updated
    incrementally under the users' locks (``profiles.fold``), not recomputed.
    """
    try:
        return _record_events(batch)
    except IntegrityError as exc:
        if not isinstance(exc.__cause__, psycopg.errors.ForeignKeyViolation):
            raise
        return _record_events(batch)  # a user was forgotten meanwhile: see record_event


def _record_events(batch: list[EventInput]) -> BatchResult:
    item_ids = {data.item for data in batch if data.item is not None}
    items = dict(Item.objects.filter(external_id__in=item_ids).values_list("external_id", "pk"))
    for index, data in enumerate(batch):
        if data.item is not None and data.item not in items:
            raise UnknownItem(data.item, index)
    now = timezone.now()
    first: dict[tuple[str, str], EventInput] = {}
    unique: list[tuple[int, EventInput]] = []
    for index, data in enumerate(batch):
        if data.event_id:
            key = (data.user, data.event_id)
            if key in first:
                earlier = first[key]
                differing = differing_fields(
                    data, replace(earlier, occurred_at=earlier.occurred_at or now)
                )
                if differing:
                    raise EventConflict(data.event_id, differing, index)
                continue
            first[key] = data
        unique.append((index, data))
    with transaction.atomic():
        user_ext = {data.user for _, data in unique}
        users = dict(
            EndUser.objects.filter(external_id__in=user_ext).values_list("external_id", "pk")
        )
        forgotten = privacy.recently_forgotten(user_ext - users.keys())
        unique = [(index, data) for index, data in unique if data.user not in forgotten]
        stored = _stored_events([(data.user, data.event_id) for _, data in unique], users)
        fresh = []
        for index, data in unique:
            if data.event_id and (data.user, data.event_id) in stored:
                differing = differing_fields(data, stored[(data.user, data.event_id)])
                if differing:
                    raise EventConflict(data.event_id, differing, index)
                continue
            fresh.append((index, data))
        new_users = sorted({data.user for _, data in fresh} - users.keys())
        EndUser.objects.bulk_create(
            [EndUser(external_id=external_id) for external_id in new_users], ignore_conflicts=True
        )
        if new_users:
            users.update(
                EndUser.objects.filter(external_id__in=new_users).values_list("external_id", "pk")
            )
        rows = _insert_many(fresh, users, items, now)
        # A (user, event_id) stored concurrently since the check was skipped by the
        # INSERT: the same rules as for one stored before.
        inserted = {(row.user_id, row.event_id) for row in rows if row.event_id}
        skipped = [
            (index, data)
            for index, data in fresh
            if data.event_id and (users[data.user], data.event_id) not in inserted
        ]
        if skipped:
            again = _stored_events([(data.user, data.event_id) for _, data in skipped], users)
            for index, data in skipped:
                now_stored = again.get((data.user, data.event_id))
                differing = differing_fields(data, now_stored) if now_stored else []
                if differing:
                    raise EventConflict(data.event_id, differing, index)
        updated = 0
        for space in spaces.profile_spaces():
            updated = max(updated, profiles.fold(rows, space))
        if updated:
            list_cache.after_events(row.user_id for row in rows if row.kind not in SIGNALLESS)
    counters.events_ingested(row.kind for row in rows)
    skipped_forgotten = sum(1 for data in batch if data.user in forgotten)
    return BatchResult(
        created=len(rows),
        duplicates=len(batch) - len(rows) - skipped_forgotten,
        profiles_updated=updated,
        forgotten=skipped_forgotten,
    )


def _stored_events(
    keys: list[tuple[str, str | None]], users: dict[str, int]
) -> dict[tuple[str, str], EventInput]:
    """The stored events among ``(user external id, event_id)`` pairs, in one query."""
    wanted = [(users[user], event_id) for user, event_id in keys if event_id and user in users]
    if not wanted:
        return {}
    names = {pk: external_id for external_id, pk in users.items()}
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT b.user_id, b.event_id, i.external_id, b.kind, b.value, b.text, b.context,
                b.occurred_at
            FROM unnest(%s::bigint[], %s::text[]) AS k(user_id, event_id)
            JOIN {Behaviour._meta.db_table} b
                ON b.user_id = k.user_id AND b.event_id = k.event_id
            LEFT JOIN {Item._meta.db_table} i ON i.id = b.item_id
            """,
            [[pk for pk, _ in wanted], [event_id for _, event_id in wanted]],
        )
        rows = cursor.fetchall()
    return {
        (names[user_id], event_id): EventInput(
            user=names[user_id],
            kind=kind,
            item=item,
            value=value,
            text=text,
            context=json.loads(context) if isinstance(context, str) else context,
            event_id=event_id,
            occurred_at=occurred_at,
        )
        for user_id, event_id, item, kind, value, text, context, occurred_at in rows
    }


def _insert_many(
    fresh: list[tuple[int, EventInput]],
    users: dict[str, int],
    items: dict[str, int],
    now: datetime,
) -> list[Behaviour]:
    """INSERT the events in one statement, skipping any (user, event_id) stored meanwhile;
    the rows written, with their keys.

    Rows go in (user, event_id) order, so that two batches overlapping in their events
    wait on each other in one order and cannot deadlock.
    """
    records = sorted((data for _, data in fresh), key=lambda d: (users[d.user], d.event_id or ""))
    if not records:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {Behaviour._meta.db_table} (user_id, item_id, kind, value, text,
                context, event_id, occurred_at, created_at, recommendation_id, position)
            SELECT u.user_id, u.item_id, u.kind, u.value, u.text, u.context::jsonb, u.event_id,
                u.occurred_at, %s, u.recommendation_id, u.position
            FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::float8[], %s::text[],
                %s::text[], %s::text[], %s::timestamptz[], %s::uuid[], %s::smallint[])
                AS u(user_id, item_id, kind, value, text, context, event_id, occurred_at,
                     recommendation_id, position)
            ON CONFLICT (user_id, event_id) DO NOTHING
            RETURNING id, user_id, item_id, kind, value, text, event_id, occurred_at
            """,
            [
                now,
                [users[d.user] for d in records],
                [items[d.item] if d.item is not None else None for d in records],
                [d.kind for d in records],
                [d.value for d in records],
                [d.text or "" for d in records],
                [json.dumps(d.context or {}, ensure_ascii=False) for d in records],
                [d.event_id or None for d in records],
                [d.occurred_at or now for d in records],
                [d.recommendation_id for d in records],
                [d.position for d in records],
            ],
        )
        returned = cursor.fetchall()
    rows = []
    for pk, user_id, item_id, kind, value, text, event_id, occurred_at in returned:
        row = Behaviour(
            pk=pk,
            user_id=user_id,
            item_id=item_id,
            kind=kind,
            value=value,
            text=text,
            event_id=event_id,
            occurred_at=occurred_at,
        )
        row._state.adding = False
        rows.append(row)
    return rows
