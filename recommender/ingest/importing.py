"""Bulk import of items and behaviours from CSV or JSONL files, all or nothing.

Every row is parsed and checked before anything is written; the first bad row raises
:class:`ImportFailed` with a one-line message naming the line, the column and the reason.
Writing happens in one transaction (items by batched upsert, behaviours by ``COPY``), so
a failure part way leaves the database as it was.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from recommender import behaviour
from recommender.ingest import eventbounds, limits, privacy
from recommender.models import Behaviour, EndUser, Item

ITEM_FIELDS = ("external_id", "title", "description", "category", "tags", "attributes", "is_active")
BEHAVIOUR_FIELDS = (
    "event_id",
    "user",
    "item",
    "kind",
    "value",
    "text",
    "context",
    "occurred_at",
)
BEHAVIOUR_KINDS = behaviour.KINDS  # the importer's name for them
BATCH_SIZE = 2000

Progress = Callable[[str, int], None]


class ImportFailed(Exception):
    """A row could not be imported; ``str()`` is the one line to show the user."""

    def __init__(self, where: str, message: str, column: str | None = None):
        self.where = where
        self.column = column
        self.message = message
        prefix = f"{where}: column '{column}': " if column else f"{where}: "
        super().__init__(prefix + message)


@dataclass
class ImportReport:
    """What an import did (or, for a dry run, would do)."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    users_created: int = 0
    dry_run: bool = False
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class Row:
    """One record read from a file, with where it came from for error messages."""

    where: str
    values: dict[str, Any]


# --- Reading files ----------------------------------------------------------------------


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt:
        return fmt
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    if suffix in {".csv", ".tsv", ".txt"}:
        return "csv"
    raise ImportFailed(
        str(path), f"cannot tell the format from {suffix!r}; pass --format csv|jsonl"
    )


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFailed(str(path), f"cannot read the file: {exc.strerror}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = data[exc.start : exc.start + 1].hex()
        raise ImportFailed(
            f"line {line}", f"not valid UTF-8 (byte 0x{byte}); re-save the file as UTF-8"
        ) from exc


def read_rows(path: Path, fmt: str | None = None, label: str = "") -> Iterator[Row]:
    """Yield the records of a CSV (with a header row) or JSONL file."""
    fmt = detect_format(path, fmt)
    text = _decode(path)
    prefix = f"{label} " if label else ""
    if fmt == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ImportFailed(f"{prefix}line {number}", f"not valid JSON: {exc.msg}") from exc
            if not isinstance(record, dict):
                raise ImportFailed(f"{prefix}line {number}", "each line must be a JSON object")
            yield Row(f"{prefix}line {number}", record)
        return
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    header = [name.strip() for name in header]
    width = len(header)
    try:
        for values in reader:
            if not values:
                continue
            where = f"{prefix}line {reader.line_num}"
            if len(values) != width:
                raise ImportFailed(where, f"{len(values)} values but the header has {width}")
            yield Row(where, dict(zip(header, values, strict=True)))
    except csv.Error as exc:
        raise ImportFailed(f"{prefix}line {reader.line_num}", f"malformed CSV: {exc}") from exc


# --- Field parsing ------------------------------------------------------------------------


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _text(row: Row, column: str, value: Any, *, required: bool, max_length: int | None) -> str:
    if _blank(value):
        if required:
            raise ImportFailed(row.where, "is required", column)
        return ""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ImportFailed(row.where, f"not text: {value!r}", column)
    text = str(value).strip()
    if "\x00" in text:
        raise ImportFailed(row.where, "contains a NUL byte", column)
    if max_length and len(text) > max_length:
        raise ImportFailed(row.where, f"longer than {max_length} characters", column)
    return text


def _external_id(row: Row, column: str, value: Any, *, required: bool) -> str:
    """An item or user id (surrounding spaces, common in files, are dropped first)."""
    text = _text(row, column, value, required=required, max_length=None)
    if not text:
        return text
    try:
        return limits.check_external_id(text)
    except limits.InvalidValue as exc:
        raise ImportFailed(row.where, exc.reason, column) from None


def _number(row: Row, column: str, value: Any) -> float | None:
    if _blank(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ImportFailed(row.where, f"not a number: {value!r}", column) from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise ImportFailed(row.where, f"not a finite number: {value!r}", column)
    return number


_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


def _boolean(row: Row, column: str, value: Any, default: bool) -> bool:
    if _blank(value):
        return default
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImportFailed(row.where, f"not a boolean: {value!r}", column)


def _json_object(row: Row, column: str, value: Any) -> dict:
    if _blank(value):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError):  # RecursionError: absurdly deep
            raise ImportFailed(row.where, f"not a JSON object: {value!r}", column) from None
    if not isinstance(value, dict):
        raise ImportFailed(row.where, f"not a JSON object: {value!r}", column)
    return value


def _tags(row: Row, column: str, value: Any) -> list[str]:
    if _blank(value):
        return []
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError:
                raise ImportFailed(row.where, f"not a JSON list: {value!r}", column) from None
        else:
            separator = "|" if "|" in stripped else ","
            return [tag.strip() for tag in stripped.split(separator) if tag.strip()]
    if not isinstance(value, list) or not all(isinstance(tag, str | int) for tag in value):
        raise ImportFailed(row.where, f"not a list of tags: {value!r}", column)
    return [str(tag).strip() for tag in value if str(tag).strip()]


def parse_datetime(value: Any) -> datetime | None:
    """Unix seconds (or milliseconds) or ISO 8601; naive times are taken as UTC."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return None
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if not math.isfinite(seconds):
        return None
    if abs(seconds) > 1e11:  # milliseconds since the epoch
        seconds /= 1000.0
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _datetime(row: Row, column: str, value: Any, default: datetime) -> datetime:
    if _blank(value):
        return default
    moment = parse_datetime(value)
    if moment is None:
        raise ImportFailed(row.where, f"not a date: {value!r}", column)
    return moment


def _coerce_attribute(value: Any) -> Any:
    """A cell of an extra column as an attribute: numbers become numbers, text stays text.

    An integer beyond 1e15 stays text: it is a code (a barcode, a supplier's id), and a
    float would lose its digits. A numeric cell too large for a float ("1e5000") raises
    ``ValueError``: kept as text it would reach the blurbs as a price. "nan" and "inf"
    without digits are words.
    """
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if math.isfinite(number):
            if number.is_integer() and "." not in value:
                return int(number) if abs(number) <= limits.MAX_NUMBER else value
            return number
        if any(ch.isdigit() for ch in value):
            raise ValueError(f"not a finite number: {value!r}")
    return value


def _mapped(mapping: dict[str, str], target: str) -> str:
    return mapping.get(target, target)


def check_mapping(mapping: dict[str, str], fields: Iterable[str]) -> None:
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ImportFailed("--map", f"unknown field {unknown[0]!r}; fields are {', '.join(fields)}")


# --- Items ------------------------------------------------------------------------------------


def _columns(mapping: dict[str, str], fields: Iterable[str]) -> dict[str, str]:
    return {name: _mapped(mapping, name) for name in fields}


def parse_item(row: Row, col: dict[str, str]) -> dict[str, Any]:
    """Validate one item record: ``external_id`` and the fields the record has a column
    (or key) for, so an update changes only those. Columns that are not item fields go
    into ``attributes``. A present column with an empty cell is the field's default.

    ``col`` maps each item field to the column it is read from (see ``_columns``).
    """
    v = row.values
    record: dict[str, Any] = {
        "external_id": _external_id(
            row, col["external_id"], v.get(col["external_id"]), required=True
        )
    }
    if col["title"] in v:
        record["title"] = _text(row, col["title"], v[col["title"]], required=True, max_length=500)
    if col["description"] in v:
        record["description"] = _text(
            row, col["description"], v[col["description"]], required=False, max_length=None
        )
    if col["category"] in v:
        record["category"] = _text(
            row, col["category"], v[col["category"]], required=False, max_length=200
        )
    if col["tags"] in v:
        record["tags"] = _tags(row, col["tags"], v[col["tags"]])
    used = set(col.values())
    extra = [key for key in v if key and key not in used]
    if col["attributes"] in v or extra:
        record["attributes"] = _attributes(row, col["attributes"], extra)
    if col["is_active"] in v:
        record["is_active"] = _boolean(row, col["is_active"], v[col["is_active"]], True)
    return record


def _attributes(row: Row, column: str, extra: list[str]) -> dict[str, Any]:
    """The attributes column merged with the extra columns (the column wins), checked."""
    v = row.values
    attributes = _json_object(row, column, v.get(column))
    from_columns = set()
    for key in extra:
        if not _blank(v[key]) and key not in attributes:
            try:
                attributes[key] = _coerce_attribute(v[key])
            except ValueError as exc:
                raise ImportFailed(row.where, str(exc), key) from None
            from_columns.add(key)
    try:
        return limits.check_attributes(attributes)
    except limits.InvalidValue as exc:
        key = exc.path.removeprefix("attributes.")
        if key in from_columns:
            raise ImportFailed(row.where, exc.reason, key) from None
        raise ImportFailed(row.where, str(exc), column if column in v else None) from None


def import_items(
    rows: Iterable[Row],
    *,
    mapping: dict[str, str] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Upsert items by ``external_id``: all rows or none."""
    mapping = mapping or {}
    check_mapping(mapping, ITEM_FIELDS)
    started = time.perf_counter()
    parsed: list[dict[str, Any]] = []
    first_seen: dict[str, str] = {}
    col = _columns(mapping, ITEM_FIELDS)
    for row in rows:
        record = parse_item(row, col)
        previous = first_seen.setdefault(record["external_id"], row.where)
        if previous != row.where:
            raise ImportFailed(
                row.where,
                f"duplicate of {previous}: {record['external_id']!r}",
                _mapped(mapping, "external_id"),
            )
        parsed.append(record)
        if progress and len(parsed) % 1000 == 0:
            progress("validate", 1000)
    if progress:
        progress("validate", len(parsed) % 1000)
    existing = _existing(Item, [record["external_id"] for record in parsed])
    for record in parsed:
        if "title" not in record and record["external_id"] not in existing:
            where = first_seen[record["external_id"]]
            raise ImportFailed(where, "a new item needs a title", _mapped(mapping, "title"))
    report = ImportReport(rows=len(parsed), dry_run=dry_run)
    report.updated = len(existing)
    report.created = len(parsed) - len(existing)
    if not dry_run:
        # One lock order for every writer: concurrent overlapping imports cannot deadlock.
        parsed.sort(key=lambda record: record["external_id"])
        with transaction.atomic():
            for batch, fields in _upsert_batches(parsed):
                # A new row gets the model's defaults for the fields it lacks; an existing
                # row keeps them (the record names what it changes).
                Item.objects.bulk_create(
                    [Item(**record) for record in batch],
                    update_conflicts=True,
                    unique_fields=["external_id"],
                    update_fields=[name for name in fields if name != "external_id"]
                    + ["updated_at"],
                )
                if progress:
                    progress("write", len(batch))
    report.seconds = time.perf_counter() - started
    return report


def _upsert_batches(
    records: list[dict[str, Any]],
) -> Iterator[tuple[list[dict[str, Any]], tuple[str, ...]]]:
    """Consecutive records that set the same fields, at most BATCH_SIZE at a time, in the
    records' order (one upsert statement updates one set of columns). A file has one set
    for all its rows; a bulk API call may mix them."""
    batch: list[dict[str, Any]] = []
    fields: tuple[str, ...] = ()
    for record in records:
        present = tuple(name for name in ITEM_FIELDS if name in record)
        if batch and (present != fields or len(batch) == BATCH_SIZE):
            yield batch, fields
            batch = []
        batch.append(record)
        fields = present
    if batch:
        yield batch, fields


def _existing(model, external_ids: list[str]) -> dict[str, int]:
    """Map the external ids that already exist to primary keys."""
    unique = list(dict.fromkeys(external_ids))
    if not unique:
        return {}
    # One "= ANY(array)" query is far cheaper than Django's IN with 10,000s of parameters.
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT external_id, id FROM "{model._meta.db_table}" WHERE external_id = ANY(%s)',
            [unique],
        )
        return dict(cursor.fetchall())


# --- Behaviours ---------------------------------------------------------------------------------


def parse_behaviour(
    row: Row, col: dict[str, str], *, default_kind: str | None, now: datetime
) -> dict[str, Any]:
    """Validate one behaviour record (references to users and items are checked later)."""
    v = row.values
    kind_raw = v.get(col["kind"])
    if _blank(kind_raw):
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
    item = _external_id(row, col["item"], v.get(col["item"]), required=kind != "search")
    value = _number(row, col["value"], v.get(col["value"]))
    if kind == "rating" and value is None:
        raise ImportFailed(row.where, "a rating needs a value", col["value"])
    problem = eventbounds.value_problem(kind, value)
    if problem:
        raise ImportFailed(row.where, f"{value:g}: {problem}", col["value"])
    occurred_at = _datetime(row, col["occurred_at"], v.get(col["occurred_at"]), now)
    problem = eventbounds.time_problem(occurred_at, now)
    if problem:
        raise ImportFailed(row.where, f"{occurred_at.isoformat()} {problem}", col["occurred_at"])
    event_id = _text(row, col["event_id"], v.get(col["event_id"]), required=False, max_length=200)
    return {
        "event_id": event_id or None,
        "user": _external_id(row, col["user"], v.get(col["user"]), required=True),
        "item": item or None,
        "kind": kind,
        "value": value,
        "text": _text(row, col["text"], v.get(col["text"]), required=False, max_length=20000),
        "context": _json_object(row, col["context"], v.get(col["context"])),
        "occurred_at": occurred_at,
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
    """
    mapping = mapping or {}
    check_mapping(mapping, BEHAVIOUR_FIELDS)
    if default_kind is not None and default_kind not in BEHAVIOUR_KINDS:
        raise ImportFailed("--kind", f"not a behaviour kind: {default_kind!r}")
    started = time.perf_counter()
    now = timezone.now()
    parsed: list[tuple[str, dict[str, Any]]] = []
    event_lines: dict[tuple[str, str], str] = {}
    col = _columns(mapping, BEHAVIOUR_FIELDS)
    for row in rows:
        record = parse_behaviour(row, col, default_kind=default_kind, now=now)
        event_id = record["event_id"]
        if event_id is not None:
            previous = event_lines.setdefault((record["user"], event_id), row.where)
            if previous != row.where:
                raise ImportFailed(
                    row.where,
                    f"duplicate of {previous}: {event_id!r}",
                    _mapped(mapping, "event_id"),
                )
        parsed.append((row.where, record))
        if progress and len(parsed) % 5000 == 0:
            progress("validate", 5000)
    if progress:
        progress("validate", len(parsed) % 5000)

    items = _existing(Item, [r["item"] for _, r in parsed if r["item"] is not None])
    for where, record in parsed:
        if record["item"] is not None and record["item"] not in items:
            raise ImportFailed(where, f"unknown item {record['item']!r}", _mapped(mapping, "item"))
    users = _existing(EndUser, [r["user"] for _, r in parsed])
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
            _mapped(mapping, "event_id"),
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
    users.update(_existing(EndUser, new_users))
    received = timezone.now()
    table = Behaviour._meta.db_table
    # COPY is several times faster than INSERT for the large append-only behaviour table.
    sql = (
        f'COPY "{table}" (user_id, item_id, kind, value, text, context, event_id, '
        "occurred_at, created_at) FROM STDIN"
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
                )
            )
            if progress and count % 5000 == 0:
                progress("write", 5000)
    if progress:
        progress("write", len(parsed) % 5000)
