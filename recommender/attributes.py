"""Typed item attributes: the schema every write path checks and rule expressions type.

An attribute is declared in settings (``RECOMMENDER_ITEM_ATTRIBUTES``, name → type or
``{"type": …, "required": …, "indexed": …}``) or in the admin (``ItemAttribute`` rows);
settings win over a row of the same name. Types: ``number``, ``string``, ``set`` (a list
of strings), ``boolean``, ``timestamp`` (an ISO-8601 string with its UTC offset).
Attributes declared nowhere stay free-form, as they always were; rule filters can only
name declared ones (declaring is what makes a filter typed and indexable).

The schema is read once per process and re-read when an admin edit bumps its version in
the shared cache (``invalidate``), so every process of every machine sees a change
within ``_RECHECK_SECONDS``.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from recommender import sharedcache
from recommender.conf import conf
from recommender.models import AttributeType, ItemAttribute

TYPES = tuple(AttributeType.values)
_VERSION_KEY = "recommender:attribute-schema-version"
_RECHECK_SECONDS = 5.0
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
# A set attribute of more members than this is a data error, not a set.
MAX_SET_MEMBERS = 1000


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str
    required: bool = False
    indexed: bool = False


class SchemaError(ValueError):
    """``RECOMMENDER_ITEM_ATTRIBUTES`` is malformed."""


_cached: tuple[Any, float, dict[str, Attribute]] | None = None


def schema() -> dict[str, Attribute]:
    """Name → declared attribute (the admin's rows, then settings over them)."""
    declared = dict(_rows())
    declared.update(from_settings())
    return declared


def _rows() -> dict[str, Attribute]:
    global _cached
    now = time.monotonic()
    if _cached is not None and now - _cached[1] < _RECHECK_SECONDS:
        return _cached[2]
    version = sharedcache.get(_VERSION_KEY, 0)
    if _cached is not None and _cached[0] == version:
        _cached = (version, now, _cached[2])
        return _cached[2]
    rows = {
        row.name: Attribute(row.name, row.type, row.required, row.indexed)
        for row in ItemAttribute.objects.all()
    }
    _cached = (version, now, rows)
    return rows


def types() -> dict[str, str]:
    """Name → type, the shape ``serving.rules.parse`` takes."""
    return {name: attribute.type for name, attribute in schema().items()}


def invalidate() -> None:
    """After an admin edit: every process re-reads the schema."""
    global _cached
    _cached = None
    sharedcache.set(_VERSION_KEY, time.time(), None)


def from_settings() -> dict[str, Attribute]:
    """``RECOMMENDER_ITEM_ATTRIBUTES`` as attributes; raises :class:`SchemaError`."""
    raw = conf.ITEM_ATTRIBUTES or {}
    if not isinstance(raw, dict):
        raise SchemaError("RECOMMENDER_ITEM_ATTRIBUTES must map names to types")
    found = {}
    for name, spec in raw.items():
        if not isinstance(name, str) or not NAME.match(name):
            raise SchemaError(
                f"RECOMMENDER_ITEM_ATTRIBUTES: {name!r} is no name "
                "(letters, digits and _, not starting with a digit)"
            )
        if isinstance(spec, str):
            spec = {"type": spec}
        if not isinstance(spec, dict) or spec.get("type") not in TYPES:
            raise SchemaError(
                f"RECOMMENDER_ITEM_ATTRIBUTES[{name!r}]: the type must be one of {', '.join(TYPES)}"
            )
        found[name] = Attribute(
            name, spec["type"], bool(spec.get("required")), bool(spec.get("indexed"))
        )
    return found


def problems(attributes: dict) -> dict[str, str]:
    """Declared name → why its value does not fit (empty when all fit). Numeric strings
    of number attributes are converted in place (CSV files carry text), so what is
    stored is what filters compare."""
    found = {}
    for name, attribute in schema().items():
        if name not in attributes or attributes[name] is None:
            if attribute.required:
                found[name] = f"is required (a {attribute.type})"
            continue
        value = attributes[name]
        checked = _check(attribute.type, value)
        if isinstance(checked, str):
            found[name] = checked
        else:
            attributes[name] = checked[0]
    return found


def _check(kind: str, value: Any) -> tuple[Any] | str:
    """``(value as stored,)`` or the reason it does not fit ``kind``."""
    if kind == "number":
        if isinstance(value, str) and len(value.strip()) <= 40:
            try:
                number = Decimal(value.strip())
            except InvalidOperation:
                return "must be a number"
            value = float(number) if number.is_finite() else math.nan
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if not math.isfinite(value):
            return "must be a finite number"
        return (value,)
    if kind == "string":
        return (value,) if isinstance(value, str) else "must be text"
    if kind == "boolean":
        return (value,) if isinstance(value, bool) else "must be true or false"
    if kind == "set":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return "must be a list of strings"
        if len(value) > MAX_SET_MEMBERS:
            return f"must have at most {MAX_SET_MEMBERS} members"
        return (value,)
    if kind == "timestamp":
        if not isinstance(value, str):
            return "must be an ISO-8601 timestamp with its UTC offset"
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return "must be an ISO-8601 timestamp with its UTC offset"
        if parsed.tzinfo is None:
            return "must carry its UTC offset (e.g. 2026-12-01T00:00:00+08:00)"
        return (value,)
    return f"has an unknown type {kind!r}"


# --- Expression indexes for indexed number and timestamp attributes -------------------------

_READERS = {"number": "recommender_attr_number", "timestamp": "recommender_attr_time"}


def index_name(name: str) -> str:
    """The expression index of attribute ``name`` (unique, within PostgreSQL's 63 bytes)."""
    digest = hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"item_attr_{name.lower()[:40]}_{digest}"


def index_statements() -> list[str]:
    """``CREATE INDEX CONCURRENTLY`` for every indexed number or timestamp attribute, as
    rule filters read it (``recommender_attr_number(attributes -> 'price')``). Names are
    checked against :data:`NAME` on declaration, so they are safe as SQL literals."""
    statements = []
    for name, attribute in sorted(schema().items()):
        reader = _READERS.get(attribute.type)
        if not attribute.indexed or reader is None or not NAME.match(name):
            continue
        statements.append(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {index_name(name)} "
            f"ON recommender_item (({reader}(attributes -> '{name}')))"
        )
    return statements
