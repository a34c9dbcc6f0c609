"""What importers share: one row of a file, the parsers of its cells (each refusing a bad
value with :class:`ImportFailed` naming the line, the column and the reason), the column
mapping, and the report.

Every row is parsed and checked before anything is written; writing happens in one
transaction, so a failure part way leaves the database as it was."""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connection

from recommender.ingest import limits

BATCH_SIZE = 2000

# The longest list the API serves (``recommender.api.serializers.MAX_K``, which this layer
# may not import; tests/ingest/test_importing.py keeps the two equal): an item's 1-based
# position in a served list lies between 1 and this.
MAX_POSITION = 200


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


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def text_cell(row: Row, column: str, value: Any, *, required: bool, max_length: int | None) -> str:
    if is_blank(value):
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


def external_id_cell(row: Row, column: str, value: Any, *, required: bool) -> str:
    """An item or user id (surrounding spaces, common in files, are dropped first)."""
    text = text_cell(row, column, value, required=required, max_length=None)
    if not text:
        return text
    try:
        return limits.check_external_id(text)
    except limits.InvalidValue as exc:
        raise ImportFailed(row.where, exc.reason, column) from None


def number_cell(row: Row, column: str, value: Any) -> float | None:
    if is_blank(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ImportFailed(row.where, f"not a number: {value!r}", column) from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise ImportFailed(row.where, f"not a finite number: {value!r}", column)
    return number


_INTEGER = re.compile(r"[+-]?[0-9]+(\.0*)?")


def integer_cell(row: Row, column: str, value: Any, *, minimum: int, maximum: int) -> int | None:
    """A whole number within ``minimum``..``maximum``, as the API's integer fields take it:
    ``3``, ``"3"`` or ``"3.0"``, but not ``3.5`` nor ``true``."""
    if is_blank(value):
        return None
    text = str(value).strip()
    if isinstance(value, bool) or not _INTEGER.fullmatch(text) or len(text) > 50:
        raise ImportFailed(row.where, f"not a whole number: {value!r}", column)
    number = int(text.partition(".")[0])
    if not minimum <= number <= maximum:
        raise ImportFailed(row.where, f"{number}: must lie between {minimum} and {maximum}", column)
    return number


def position_cell(row: Row, column: str, value: Any) -> int | None:
    """An item's 1-based position in a served list, bounded like the API's ``position``."""
    if is_blank(value):
        return None
    try:
        return integer_cell(row, column, value, minimum=1, maximum=MAX_POSITION)
    except ImportFailed as exc:
        raise ImportFailed(
            row.where, f"{exc.message} (the item's 1-based position in its list)", column
        ) from None


def uuid_cell(row: Row, column: str, value: Any) -> uuid.UUID | None:
    """A UUID (a ``recommendation_id``) in the forms the API's ``UUIDField`` takes: 32 hex
    digits, with or without hyphens, braces or ``urn:uuid:``; from JSONL also an integer.
    Surrounding spaces, common in files, are dropped first."""
    if is_blank(value):
        return None
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            return uuid.UUID(int=value)
        if isinstance(value, str):
            return uuid.UUID(hex=value.strip())
    except ValueError:
        pass
    raise ImportFailed(row.where, f"not a UUID: {value!r}", column)


_TRUE = {"1", "true", "yes", "y", "t"}


_FALSE = {"0", "false", "no", "n", "f"}


def boolean_cell(row: Row, column: str, value: Any, default: bool) -> bool:
    if is_blank(value):
        return default
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImportFailed(row.where, f"not a boolean: {value!r}", column)


def json_object_cell(row: Row, column: str, value: Any) -> dict:
    if is_blank(value):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError):  # RecursionError: absurdly deep
            raise ImportFailed(row.where, f"not a JSON object: {value!r}", column) from None
    if not isinstance(value, dict):
        raise ImportFailed(row.where, f"not a JSON object: {value!r}", column)
    return value


def tags_cell(row: Row, column: str, value: Any) -> list[str]:
    if is_blank(value):
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


def datetime_cell(row: Row, column: str, value: Any, default: datetime) -> datetime:
    if is_blank(value):
        return default
    moment = parse_datetime(value)
    if moment is None:
        raise ImportFailed(row.where, f"not a date: {value!r}", column)
    return moment


def coerce_attribute(value: Any) -> Any:
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


def mapped_column(mapping: dict[str, str], target: str) -> str:
    return mapping.get(target, target)


def check_mapping(mapping: dict[str, str], fields: Iterable[str]) -> None:
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ImportFailed("--map", f"unknown field {unknown[0]!r}; fields are {', '.join(fields)}")


def column_names(mapping: dict[str, str], fields: Iterable[str]) -> dict[str, str]:
    return {name: mapped_column(mapping, name) for name in fields}


def existing_ids(model, external_ids: list[str]) -> dict[str, int]:
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
