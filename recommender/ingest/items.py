"""Importing items: validated rows upserted in batches (sorted keys, no deadlocks), only
the fields a file or a request gives."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import transaction

from recommender import spaces
from recommender.ingest import limits
from recommender.ingest.fields import (
    BATCH_SIZE,
    ImportFailed,
    ImportReport,
    Progress,
    Row,
    boolean_cell,
    check_mapping,
    coerce_attribute,
    column_names,
    datetime_cell,
    existing_ids,
    external_id_cell,
    is_blank,
    json_object_cell,
    mapped_column,
    tags_cell,
    text_cell,
)
from recommender.models import LANGUAGE_CODE, Item
from recommender.serving import list_cache

ITEM_FIELDS = (
    "external_id", "title", "description", "category", "tags", "attributes", "translations",
    "is_active", "available_from", "available_until", "is_hidden",
)  # fmt: skip
# A translated text's column (or ``--map`` target): ``title[en]``, ``description[ja]``.
TRANSLATED = re.compile(r"(title|description)\[([^\]]*)\]")
_LANGUAGE_CODE = re.compile(LANGUAGE_CODE)


def translated_columns(mapping: dict[str, str]) -> dict[str, str]:
    """The ``--map`` entries that name a translated text (``title[en]=name_en``), checked:
    target → column."""
    found = {}
    for target, column in mapping.items():
        if match := TRANSLATED.fullmatch(target):
            if not _LANGUAGE_CODE.fullmatch(match[2]):
                raise ImportFailed(
                    "--map", f"{target!r}: {match[2]!r} is not a language code (like 'en')"
                )
            found[target] = column
    return found


def parse_item(row: Row, col: dict[str, str]) -> dict[str, Any]:
    """Validate one item record: ``external_id`` and the fields the record has a column
    (or key) for, so an update changes only those. Columns that are not item fields go
    into ``attributes``, except translated texts: ``title[en]``, ``description[en]``
    (any language code in brackets), which go into ``translations`` with the
    ``translations`` column (a JSON object; it wins over those columns). A present column
    with an empty cell is the field's default.

    ``col`` maps each item field to the column it is read from (see ``column_names``), and
    the translated texts that ``--map`` names (``title[en]``) to theirs.
    """
    v = row.values
    record: dict[str, Any] = {
        "external_id": external_id_cell(
            row, col["external_id"], v.get(col["external_id"]), required=True
        )
    }
    if col["title"] in v:
        record["title"] = text_cell(
            row, col["title"], v[col["title"]], required=True, max_length=500
        )
    if col["description"] in v:
        record["description"] = text_cell(
            row, col["description"], v[col["description"]], required=False, max_length=None
        )
    if col["category"] in v:
        record["category"] = text_cell(
            row, col["category"], v[col["category"]], required=False, max_length=200
        )
    if col["tags"] in v:
        record["tags"] = tags_cell(row, col["tags"], v[col["tags"]])
    used = set(col.values())
    translated = {target: column for target, column in col.items() if "[" in target}
    for key in v:
        if not isinstance(key, str) or key[-1:] != "]" or key in used or key in translated:
            continue  # the common case, without a regular expression per cell
        if m := TRANSLATED.fullmatch(key):
            if not _LANGUAGE_CODE.fullmatch(m[2]):
                raise ImportFailed(
                    row.where, f"{m[2]!r} in brackets is not a language code (like 'en')", key
                )
            translated[key] = key
    used |= set(translated.values())
    extra = [key for key in v if key and key not in used]
    if col["attributes"] in v or extra:
        record["attributes"] = _attributes(row, col["attributes"], extra)
    if col["translations"] in v or translated:
        record["translations"] = _translations(row, col["translations"], translated)
    if col["is_active"] in v:
        record["is_active"] = boolean_cell(row, col["is_active"], v[col["is_active"]], True)
    if col["is_hidden"] in v:
        record["is_hidden"] = boolean_cell(row, col["is_hidden"], v[col["is_hidden"]], False)
    for name in ("available_from", "available_until"):  # an empty cell: no bound
        if col[name] in v:
            cell = v[col[name]]
            record[name] = None if is_blank(cell) else datetime_cell(row, col[name], cell, None)
    start, end = record.get("available_from"), record.get("available_until")
    if start and end and end <= start:
        raise ImportFailed(
            row.where, "available_until must be later than available_from", col["available_until"]
        )
    return record


def _attributes(row: Row, column: str, extra: list[str]) -> dict[str, Any]:
    """The attributes column merged with the extra columns (the column wins), checked."""
    v = row.values
    attributes = json_object_cell(row, column, v.get(column))
    from_columns = set()
    for key in extra:
        if not is_blank(v[key]) and key not in attributes:
            try:
                attributes[key] = coerce_attribute(v[key])
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


def _translations(row: Row, column: str, translated: dict[str, str]) -> dict[str, Any]:
    """The translations column merged with the translated-text columns (the column wins),
    checked. ``translated``: target (``title[en]``) → column."""
    v = row.values
    given = json_object_cell(row, column, v.get(column))
    translations = {
        code: dict(texts) if isinstance(texts, dict) else texts for code, texts in given.items()
    }
    from_columns: dict[str, str] = {}
    for target, key in translated.items():
        if key not in v or is_blank(v[key]):
            continue
        name, code = TRANSLATED.fullmatch(target).groups()
        text = text_cell(row, key, v[key], required=False, max_length=None)
        texts = translations.setdefault(code, {})
        if isinstance(texts, dict) and name not in texts:
            texts[name] = text
            from_columns[f"{code}.{name}"] = key
    try:
        return limits.check_translations(translations)
    except limits.InvalidValue as exc:
        where = exc.path.removeprefix("translations.")
        if where in from_columns:
            raise ImportFailed(row.where, exc.reason, from_columns[where]) from None
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
    translated = translated_columns(mapping)
    check_mapping(
        {target: column for target, column in mapping.items() if target not in translated},
        (*ITEM_FIELDS, "title[LANG]", "description[LANG]"),
    )
    started = time.perf_counter()
    parsed: list[dict[str, Any]] = []
    first_seen: dict[str, str] = {}
    col = column_names(mapping, ITEM_FIELDS) | translated
    for row in rows:
        record = parse_item(row, col)
        previous = first_seen.setdefault(record["external_id"], row.where)
        if previous != row.where:
            raise ImportFailed(
                row.where,
                f"duplicate of {previous}: {record['external_id']!r}",
                mapped_column(mapping, "external_id"),
            )
        parsed.append(record)
        if progress and len(parsed) % 1000 == 0:
            progress("validate", 1000)
    if progress:
        progress("validate", len(parsed) % 1000)
    existing = existing_ids(Item, [record["external_id"] for record in parsed])
    for record in parsed:
        if "title" not in record and record["external_id"] not in existing:
            where = first_seen[record["external_id"]]
            raise ImportFailed(where, "a new item needs a title", mapped_column(mapping, "title"))
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
        # Bulk writes send no signals: the lists kept go now, and once more after commit
        # (another process may have kept one from the old rows in between).
        list_cache.changed()
        transaction.on_commit(list_cache.changed)
        spaces.catalogue_changed()
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
