"""Importing behaviours: validated rows appended with ``COPY``, users created on the fly,
event ids per user, forgotten users skipped.

The online loop's columns are checked as ``POST behaviours`` checks them
(``api.serializers.BehaviourInputSerializer``, which this layer may not import: the rules
are restated in ``fields.uuid_cell``/``position_cell`` and here, and
tests/ingest/test_importing.py holds both to the same answers): an optional
``recommendation_id`` (a UUID, the served list the event came from) and the item's 1-based
``position`` in it (1 to ``fields.MAX_POSITION``, the API's ``MAX_K``); an ``impression``
must name its list, and a position needs a list.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from recommender import behaviour
from recommender.ingest import eventbounds, privacy
from recommender.ingest.fields import (
    BATCH_SIZE,
    ImportFailed,
    ImportReport,
    Progress,
    Row,
    check_mapping,
    column_names,
    datetime_cell,
    existing_ids,
    external_id_cell,
    is_blank,
    json_object_cell,
    mapped_column,
    number_cell,
    position_cell,
    text_cell,
    uuid_cell,
)
from recommender.models import Behaviour, EndUser, Item
from recommender.serving import list_cache

BEHAVIOUR_FIELDS = (
    "event_id",
    "user",
    "item",
    "kind",
    "value",
    "text",
    "context",
    "occurred_at",
    "recommendation_id",
    "position",
)


BEHAVIOUR_KINDS = behaviour.KINDS  # the importer's name for them


def parse_behaviour(
    row: Row, col: dict[str, str], *, default_kind: str | None, now: datetime
) -> dict[str, Any]:
    """Validate one behaviour record (references to users and items are checked later)."""
    v = row.values
    kind_raw = v.get(col["kind"])
    if is_blank(kind_raw):
        if default_kind is None:
            raise ImportFailed(row.where, "is required (or pass --kind)", col["kind"])
        kind = default_kind
    else:
        kind = str(kind_raw).strip().lower()
    if kind not in BEHAVIOUR_KINDS:
        raise ImportFailed(
            row.where,
            f"not a behaviour kind: {kind_raw!r} (one of {', '.join(BEHAVIOUR_KINDS)})",
            col["kind"],
        )
    item = external_id_cell(row, col["item"], v.get(col["item"]), required=kind != "search")
    value = number_cell(row, col["value"], v.get(col["value"]))
    if kind == "rating" and value is None:
        raise ImportFailed(row.where, "a rating needs a value", col["value"])
    problem = eventbounds.value_problem(kind, value)
    if problem:
        raise ImportFailed(row.where, f"{value:g}: {problem}", col["value"])
    occurred_at = datetime_cell(row, col["occurred_at"], v.get(col["occurred_at"]), now)
    problem = eventbounds.time_problem(occurred_at, now)
    if problem:
        raise ImportFailed(row.where, f"{occurred_at.isoformat()} {problem}", col["occurred_at"])
    event_id = text_cell(
        row, col["event_id"], v.get(col["event_id"]), required=False, max_length=200
    )
    recommendation_id = uuid_cell(row, col["recommendation_id"], v.get(col["recommendation_id"]))
    position = position_cell(row, col["position"], v.get(col["position"]))
    if kind == "impression" and recommendation_id is None:
        raise ImportFailed(
            row.where, "an impression names the list it was shown in", col["recommendation_id"]
        )
    if position is not None and recommendation_id is None:
        raise ImportFailed(
            row.where, "a position is within a list: give its recommendation_id", col["position"]
        )
    return {
        "event_id": event_id or None,
        "user": external_id_cell(row, col["user"], v.get(col["user"]), required=True),
        "item": item or None,
        "kind": kind,
        "value": value,
        "text": text_cell(row, col["text"], v.get(col["text"]), required=False, max_length=20000),
        "context": json_object_cell(row, col["context"], v.get(col["context"])),
        "occurred_at": occurred_at,
        "recommendation_id": recommendation_id,
        "position": position,
    }


def import_behaviours(
    rows: Iterable[Row],
    *,
    mapping: dict[str, str] | None = None,
    default_kind: str | None = None,
    skip_existing: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Append behaviours, creating unknown users on the fly: all rows or none.

    Items must already exist. Event ids are per user: a (user, ``event_id``) seen twice in
    the file is an error; one that is already stored is an error too, unless
    ``skip_existing`` (then the row is skipped). Rows of users forgotten within the grace
    period are skipped (``report.extra["forgotten"]``), so an old export does not bring
    them back.

    Online-loop columns are stored as ``POST behaviours`` stores them: ``recommendation_id``
    and ``position`` as given, ``impression`` rows like any other kind. Nothing is linked
    or looked up at import time, as the API does not either: attribution
    (``serving.attribution.attribute``) joins an event to the served-list log when it is
    read, so an imported event naming a list this site logged is attributed like a live
    one, and one naming a list it never logged (another system's history, a list purged
    since) is stored and simply attributed to nothing. Profiles are not touched here at
    all; they are rebuilt from the log (``profiles.rebuild``), which skips the kinds of
    ``behaviour.SIGNALLESS``, so an imported impression moves no profile, like a live one.
    """
    mapping = mapping or {}
    check_mapping(mapping, BEHAVIOUR_FIELDS)
    if default_kind is not None and default_kind not in BEHAVIOUR_KINDS:
        raise ImportFailed("--kind", f"not a behaviour kind: {default_kind!r}")
    started = time.perf_counter()
    now = timezone.now()
    parsed: list[tuple[str, dict[str, Any]]] = []
    event_lines: dict[tuple[str, str], str] = {}
    col = column_names(mapping, BEHAVIOUR_FIELDS)
    for row in rows:
        record = parse_behaviour(row, col, default_kind=default_kind, now=now)
        event_id = record["event_id"]
        if event_id is not None:
            previous = event_lines.setdefault((record["user"], event_id), row.where)
            if previous != row.where:
                raise ImportFailed(
                    row.where,
                    f"duplicate of {previous}: {event_id!r}",
                    mapped_column(mapping, "event_id"),
                )
        parsed.append((row.where, record))
        if progress and len(parsed) % 5000 == 0:
            progress("validate", 5000)
    if progress:
        progress("validate", len(parsed) % 5000)

    items = existing_ids(Item, [r["item"] for _, r in parsed if r["item"] is not None])
    for where, record in parsed:
        if record["item"] is not None and record["item"] not in items:
            raise ImportFailed(
                where, f"unknown item {record['item']!r}", mapped_column(mapping, "item")
            )
    users = existing_ids(EndUser, [r["user"] for _, r in parsed])
    forgotten = privacy.recently_forgotten({r["user"] for _, r in parsed} - users.keys())
    skipped_forgotten = sum(1 for _, r in parsed if r["user"] in forgotten)
    if forgotten:
        parsed = [(w, r) for w, r in parsed if r["user"] not in forgotten]
    stored = _existing_events([key for key in event_lines if key[0] in users], users)

    def already_stored(record: dict[str, Any]) -> bool:
        return (record["user"], record["event_id"]) in stored

    if stored and not skip_existing:
        where, record = next((w, r) for w, r in parsed if already_stored(r))
        raise ImportFailed(
            where,
            f"event {record['event_id']!r} of user {record['user']!r} is already stored "
            "(pass --skip-existing to skip such rows)",
            mapped_column(mapping, "event_id"),
        )
    if stored:
        parsed = [(w, r) for w, r in parsed if not already_stored(r)]

    new_users = list(dict.fromkeys(r["user"] for _, r in parsed if r["user"] not in users))
    report = ImportReport(rows=len(parsed), created=len(parsed), dry_run=dry_run)
    report.users_created = len(new_users)
    report.extra["skipped_existing"] = len(stored)
    report.extra["forgotten"] = skipped_forgotten
    if not dry_run:
        try:
            with transaction.atomic():
                _write_behaviours(parsed, users, new_users, items, progress)
        except IntegrityError as exc:
            # A concurrent writer stored one of these event ids after our check.
            raise ImportFailed("import", f"nothing written: {exc}".splitlines()[0]) from exc
        list_cache.changed()
        transaction.on_commit(list_cache.changed)
    report.seconds = time.perf_counter() - started
    return report


def _existing_events(keys: list[tuple[str, str]], users: dict[str, int]) -> set[tuple[str, str]]:
    """Those (user external id, event_id) pairs that are already stored (users: ids→pks)."""
    if not keys:
        return set()
    names = {pk: external_id for external_id, pk in users.items()}
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT b.user_id, b.event_id
            FROM unnest(%s::bigint[], %s::text[]) AS k(user_id, event_id)
            JOIN "{Behaviour._meta.db_table}" b
                ON b.user_id = k.user_id AND b.event_id = k.event_id
            """,
            [[users[user] for user, _ in keys], [event_id for _, event_id in keys]],
        )
        return {(names[user_id], event_id) for user_id, event_id in cursor.fetchall()}


def _write_behaviours(parsed, users, new_users, items, progress) -> None:
    for start in range(0, len(new_users), BATCH_SIZE):
        EndUser.objects.bulk_create(
            [
                EndUser(external_id=external_id)
                for external_id in new_users[start : start + BATCH_SIZE]
            ],
            ignore_conflicts=True,  # a user created meanwhile by the API is fine
        )
    users.update(existing_ids(EndUser, new_users))
    received = timezone.now()
    table = Behaviour._meta.db_table
    # COPY is several times faster than INSERT for the large append-only behaviour table.
    sql = (
        f'COPY "{table}" (user_id, item_id, kind, value, text, context, event_id, '
        "occurred_at, created_at, recommendation_id, position) FROM STDIN"
    )
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for count, (_, record) in enumerate(parsed, start=1):
            item = record["item"]
            copy.write_row(
                (
                    users[record["user"]],
                    items[item] if item is not None else None,
                    record["kind"],
                    record["value"],
                    record["text"],
                    json.dumps(record["context"], ensure_ascii=False)
                    if record["context"]
                    else "{}",
                    record["event_id"],
                    record["occurred_at"],
                    received,
                    record["recommendation_id"],
                    record["position"],
                )
            )
            if progress and count % 5000 == 0:
                progress("write", 5000)
    if progress:
        progress("write", len(parsed) % 5000)
