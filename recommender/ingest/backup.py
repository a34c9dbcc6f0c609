"""Full export and restore: the catalogue, end users, behaviours, scenarios, attribute
declarations and encoder-space definitions as JSONL files (one per kind) and a
``manifest.json``; restored into an empty site in one transaction.

Vectors, profiles and co-occurrence are derived data and are not exported: vectors are
rebuilt by ``manage.py embed``, co-occurrence is recomputed at the end of a restore, and
profiles are recomputed on first use (``serving.profiles.load``). Primary keys are not
kept, rows are written in the order they were stored, so ties that fall back on ids
order the same way after a restore.

Export reads through server-side cursors inside one read-only REPEATABLE READ
transaction (a consistent snapshot, never a whole table in memory); restore streams each
file, validates every row with the model fields' own checks, and names the file and line
of the first bad one.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, models, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from recommender import attributes as attribute_schema
from recommender import spaces
from recommender.models import (
    Behaviour,
    EncoderSpace,
    EndUser,
    Item,
    ItemAttribute,
    Promotion,
    Scenario,
    SpaceStatus,
)
from recommender.serving.cooccurrence import refresh_cooccurrence

FORMAT = "recsite-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CHUNK = 2000

# In restore order: declarations and spaces first, scenarios (which name a space) last.
KINDS = ("attributes", "spaces", "items", "users", "behaviours", "scenarios")
FILES = {kind: f"{kind}.jsonl" for kind in KINDS}

Progress = Callable[[str, int], None]


class BackupFailed(Exception):
    """An export or restore refused or failed; ``str()`` is the one line to show."""


def _columns(model: type[models.Model], *skip: str) -> list[models.Field]:
    """The model's stored fields, less the primary key, generated and foreign-key fields."""
    return [
        f
        for f in model._meta.concrete_fields
        if not f.primary_key
        and not isinstance(f, models.GeneratedField)
        and not f.is_relation
        and f.name not in skip
    ]


ITEM_FIELDS = [f.name for f in _columns(Item)]
USER_FIELDS = [f.name for f in _columns(EndUser)]
ATTRIBUTE_FIELDS = [f.name for f in _columns(ItemAttribute)]
SPACE_FIELDS = [f.name for f in _columns(EncoderSpace)]
SCENARIO_FIELDS = [f.name for f in _columns(Scenario)]
PROMOTION_FIELDS = [f.name for f in _columns(Promotion)]
BEHAVIOUR_COLUMNS = [f.name for f in _columns(Behaviour)]
BEHAVIOUR_FIELDS = ["user", "item", *BEHAVIOUR_COLUMNS]


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, default=_json_default) + "\n"


def migration_state() -> dict[str, Any]:
    """The recommender app's applied migrations: the latest name and how many."""
    applied = sorted(
        MigrationRecorder.Migration.objects.filter(app="recommender").values_list("name", flat=True)
    )
    return {"app": "recommender", "latest": applied[-1] if applied else None, "count": len(applied)}


# --- Export ---------------------------------------------------------------------------------


def _export_rows(kind: str) -> Iterator[dict[str, Any]]:
    if kind == "attributes":
        rows = ItemAttribute.objects.order_by("pk").values(*ATTRIBUTE_FIELDS)
        yield from rows.iterator(chunk_size=CHUNK)
    elif kind == "spaces":
        yield from (
            EncoderSpace.objects.order_by("pk").values(*SPACE_FIELDS).iterator(chunk_size=CHUNK)
        )
    elif kind == "items":
        yield from Item.objects.order_by("pk").values(*ITEM_FIELDS).iterator(chunk_size=CHUNK)
    elif kind == "users":
        yield from EndUser.objects.order_by("pk").values(*USER_FIELDS).iterator(chunk_size=CHUNK)
    elif kind == "behaviours":
        rows = Behaviour.objects.order_by("pk").values_list(
            "user__external_id", "item__external_id", *BEHAVIOUR_COLUMNS
        )
        for values in rows.iterator(chunk_size=CHUNK):
            yield dict(zip(BEHAVIOUR_FIELDS, values, strict=True))
    elif kind == "scenarios":
        promotions: dict[int, list[dict[str, Any]]] = {}
        for promotion in Promotion.objects.order_by("scenario_id", "name").values(
            "scenario_id", *PROMOTION_FIELDS
        ):
            promotions.setdefault(promotion.pop("scenario_id"), []).append(promotion)
        rows = Scenario.objects.order_by("pk").values("pk", "space__name", *SCENARIO_FIELDS)
        for row in rows.iterator(chunk_size=CHUNK):
            pk = row.pop("pk")
            row["space"] = row.pop("space__name")
            row["promotions"] = promotions.get(pk, [])
            yield row


def export_site(directory: Path, *, force: bool = False, progress: Progress | None = None) -> dict:
    """Write every kind's JSONL file into ``directory`` and then the manifest (last, so a
    half-written export has none and cannot be restored). Returns the manifest."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise BackupFailed(f"{directory}: not a folder")
    if directory.exists() and any(directory.iterdir()) and not force:
        raise BackupFailed(f"{directory}: not empty (pass --force to overwrite)")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST).unlink(missing_ok=True)
    started = time.perf_counter()
    counts: dict[str, int] = {}
    seconds: dict[str, float] = {}
    snapshot = not connection.in_atomic_block
    with transaction.atomic():
        if snapshot:  # one consistent view of all tables (first statement of the transaction)
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        migrations = migration_state()
        for kind in KINDS:
            kind_started = time.perf_counter()
            count = 0
            with open(directory / FILES[kind], "w", encoding="utf-8") as out:
                for record in _export_rows(kind):
                    out.write(_line(record))
                    count += 1
                    if progress and count % CHUNK == 0:
                        progress(kind, CHUNK)
            if progress:
                progress(kind, count % CHUNK)
            counts[kind] = count
            seconds[kind] = time.perf_counter() - kind_started
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": timezone.now().isoformat(),
        "migrations": migrations,
        "files": FILES,
        "counts": counts,
        "seconds": round(time.perf_counter() - started, 3),
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    manifest["seconds_per_kind"] = seconds  # for the caller's report, not in the file
    return manifest


# --- Restore --------------------------------------------------------------------------------


@dataclass
class RestoreReport:
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    cooccurrence_rows: int = 0
    total_seconds: float = 0.0
    spaces: list[str] = field(default_factory=list)
    # external id → new primary key, for the behaviours
    item_ids: dict[str, int] = field(default_factory=dict, repr=False)
    user_ids: dict[str, int] = field(default_factory=dict, repr=False)


def read_manifest(directory: Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise BackupFailed(f"{path}: no such file (not an export, or an unfinished one)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupFailed(f"{path}: not JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupFailed(f"{path}: not a recsite export manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BackupFailed(
            f"{path}: unknown format version {version!r} (this toolkit reads {FORMAT_VERSION})"
        )
    counts = manifest.get("counts")
    if not isinstance(counts, dict) or set(counts) != set(KINDS):
        raise BackupFailed(f"{path}: counts must name {', '.join(KINDS)}")
    latest = (manifest.get("migrations") or {}).get("latest")
    if (
        latest
        and not MigrationRecorder.Migration.objects.filter(app="recommender", name=latest).exists()
    ):
        raise BackupFailed(
            f"{path}: exported at migration {latest}, which this site has not applied "
            "(upgrade the toolkit and run `manage.py migrate` first)"
        )
    return manifest


class _Reader:
    """The records of one JSONL file, with their line numbers for messages."""

    def __init__(self, directory: Path, kind: str):
        self.name = FILES[kind]
        self.path = Path(directory) / self.name
        self.line = 0

    def fail(self, message: str, line: int | None = None) -> BackupFailed:
        return BackupFailed(f"{self.name}, line {line or self.line}: {message}")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.path.is_file():
            raise BackupFailed(f"{self.path}: no such file")
        with open(self.path, encoding="utf-8", errors="strict") as lines:
            try:
                for self.line, text in enumerate(lines, start=1):
                    if not text.strip():
                        continue
                    try:
                        record = json.loads(text)
                    except ValueError as exc:
                        raise self.fail(f"not JSON ({exc})") from None
                    if not isinstance(record, dict):
                        raise self.fail("not a JSON object")
                    yield record
            except UnicodeDecodeError:
                raise self.fail("not UTF-8", self.line + 1) from None

    def clean(
        self, model: type[models.Model], names: list[str], record: dict[str, Any]
    ) -> dict[str, Any]:
        """The named fields of ``record``, each through its model field's own checks
        (type, choices, length, blank); a missing field takes its default."""
        out = {}
        for name in names:
            model_field = model._meta.get_field(name)
            if name not in record:
                if not model_field.has_default() and not model_field.null:
                    raise self.fail(f"field {name!r} is missing")
                out[name] = model_field.get_default()
                continue
            try:
                out[name] = model_field.clean(record[name], None)
            except ValidationError as exc:
                raise self.fail(f"field {name!r}: {' '.join(exc.messages)}") from None
        return out

    def check_keys(self, record: dict[str, Any], allowed: list[str]) -> None:
        unknown = set(record) - set(allowed)
        if unknown:
            raise self.fail(f"unknown field {sorted(unknown)[0]!r}")

    def ids(self, record: dict[str, Any], name: str, known: dict[str, int], *, required: bool):
        value = record.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or value not in known:
            raise self.fail(f"unknown {name} {value!r} (not in {name}s.jsonl)")
        return known[value]


def _site_problem() -> str | None:
    held = [
        f"{model.objects.count()} {noun}"
        for model, noun in ((Item, "items"), (EndUser, "users"), (Behaviour, "behaviours"))
        if model.objects.exists()
    ]
    if held:
        return f"this site is not empty ({', '.join(held)}): restore into a fresh site"
    return None


def import_site(directory: Path, *, progress: Progress | None = None) -> RestoreReport:
    """Restore an export into an empty site, all or nothing; then recompute co-occurrence
    and build the indexes of indexed attributes. Vectors are left to ``manage.py embed``."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    report = RestoreReport()
    started = time.perf_counter()
    try:
        with transaction.atomic():
            problem = _site_problem()
            if problem:
                raise BackupFailed(problem)
            for kind in KINDS:
                kind_started = time.perf_counter()
                reader = _Reader(directory, kind)
                count = _RESTORERS[kind](reader, report, progress)
                expected = manifest["counts"][kind]
                if count != expected:
                    raise BackupFailed(
                        f"{reader.name}: {count} rows, but the manifest says {expected} "
                        "(a truncated or edited file?)"
                    )
                report.counts[kind] = count
                report.seconds[kind] = time.perf_counter() - kind_started
    except DatabaseError as exc:
        raise BackupFailed(str(exc).splitlines()[0]) from None
    _after_restore(report)
    report.total_seconds = time.perf_counter() - started
    return report


def _after_restore(report: RestoreReport) -> None:
    """Forget what caches hold of the site before, then rebuild the derived tables that
    need no encoder."""
    from django.core.cache import cache

    try:  # popularity tables and category shares are cached by item and user ids
        cache.clear()
    except Exception:  # the cache down: those entries expire within a minute anyway
        pass
    spaces.spaces_changed()
    attribute_schema.invalidate()
    with connection.cursor() as cursor:
        for statement in attribute_schema.index_statements():
            if connection.in_atomic_block:  # CONCURRENTLY runs outside transactions only
                statement = statement.replace(" CONCURRENTLY", "", 1)
            cursor.execute(statement)
    report.cooccurrence_rows = refresh_cooccurrence()


# Items in batches: bulk_create, then their stored ``updated_at`` (auto_now would stamp
# the restore's time otherwise).
def _restore_items(reader: _Reader, report: RestoreReport, progress) -> int:
    batch: list[Item] = []
    stamps: list[datetime] = []
    count = 0

    def flush():
        created = Item.objects.bulk_create(batch)
        for item in created:
            report.item_ids[item.external_id] = item.pk
        with connection.cursor() as cursor:
            cursor.execute(
                f'UPDATE "{Item._meta.db_table}" AS i SET updated_at = v.stamp '
                "FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, stamp) WHERE i.id = v.id",
                [[item.pk for item in created], stamps],
            )
        if progress:
            progress("items", len(batch))
        batch.clear()
        stamps.clear()

    seen: set[str] = set()
    for record in reader:
        reader.check_keys(record, ITEM_FIELDS)
        values = reader.clean(Item, ITEM_FIELDS, record)
        if values["external_id"] in seen:
            raise reader.fail(f"item {values['external_id']!r} appears twice")
        seen.add(values["external_id"])
        stamps.append(values["updated_at"] or timezone.now())
        batch.append(Item(**values))
        count += 1
        if len(batch) >= CHUNK:
            flush()
    if batch:
        flush()
    return count


def _restore_users(reader: _Reader, report: RestoreReport, progress) -> int:
    batch: list[EndUser] = []
    count = 0

    def flush():
        for user in EndUser.objects.bulk_create(batch):
            report.user_ids[user.external_id] = user.pk
        if progress:
            progress("users", len(batch))
        batch.clear()

    seen: set[str] = set()
    for record in reader:
        reader.check_keys(record, USER_FIELDS)
        values = reader.clean(EndUser, USER_FIELDS, record)
        if values["external_id"] in seen:
            raise reader.fail(f"user {values['external_id']!r} appears twice")
        seen.add(values["external_id"])
        batch.append(EndUser(**values))
        count += 1
        if len(batch) >= CHUNK:
            flush()
    if batch:
        flush()
    return count


_COPY_BEHAVIOURS = (
    f'COPY "{Behaviour._meta.db_table}" (user_id, item_id, '
    + ", ".join(Behaviour._meta.get_field(name).column for name in BEHAVIOUR_COLUMNS)
    + ") FROM STDIN"
)


def _restore_behaviours(reader: _Reader, report: RestoreReport, progress) -> int:
    """Validated rows appended with ``COPY``, one statement per batch, so that a failure
    the database finds (a repeated event id) is named by its range of lines."""
    users = report.user_ids
    items = report.item_ids
    json_columns = {"context"}
    batch: list[tuple] = []
    first_line = 0
    count = 0

    def flush():
        try:
            with connection.cursor() as cursor, cursor.cursor.copy(_COPY_BEHAVIOURS) as copy:
                for row in batch:
                    copy.write_row(row)
        except DatabaseError as exc:
            raise BackupFailed(
                f"{reader.name}, lines {first_line}-{reader.line}: {str(exc).splitlines()[0]}"
            ) from None
        if progress:
            progress("behaviours", len(batch))
        batch.clear()

    for record in reader:
        reader.check_keys(record, BEHAVIOUR_FIELDS)
        if not batch:
            first_line = reader.line
        user = reader.ids(record, "user", users, required=True)
        item = reader.ids(record, "item", items, required=record.get("kind") != "search")
        values = reader.clean(Behaviour, BEHAVIOUR_COLUMNS, record)
        batch.append(
            (
                user,
                item,
                *(
                    json.dumps(values[name], ensure_ascii=False)
                    if name in json_columns
                    else values[name]
                    for name in BEHAVIOUR_COLUMNS
                ),
            )
        )
        count += 1
        if len(batch) >= 5 * CHUNK:
            flush()
    if batch:
        flush()
    return count


def _restore_attributes(reader: _Reader, report: RestoreReport, progress) -> int:
    count = 0
    for record in reader:
        reader.check_keys(record, ATTRIBUTE_FIELDS)
        values = reader.clean(ItemAttribute, ATTRIBUTE_FIELDS, record)
        if ItemAttribute.objects.filter(name=values["name"]).exists():
            raise reader.fail(f"attribute {values['name']!r} is already declared on this site")
        ItemAttribute.objects.create(**values)
        count += 1
    if progress:
        progress("attributes", count)
    return count


def _restore_spaces(reader: _Reader, report: RestoreReport, progress) -> int:
    """Spaces come back without vectors: a ``ready`` one as ``building``, until ``embed``
    completes it. One already here with the same name is reused when it is the same
    encoder (``ensure-default`` may have made it); the export's active space serves."""
    count = 0
    active = None
    for record in reader:
        reader.check_keys(record, SPACE_FIELDS)
        values = reader.clean(EncoderSpace, SPACE_FIELDS, record)
        try:  # each bound is a field's own check; this one spans the two fields
            spaces.check_graph(values["index_m"], values["index_ef_construction"])
        except ValidationError as exc:
            raise reader.fail(exc.messages[0]) from None
        if values["status"] == SpaceStatus.READY:
            values["status"] = SpaceStatus.BUILDING
        is_active = values.pop("is_active")
        space = EncoderSpace.objects.filter(name=values["name"]).first()
        if space is None:
            space = EncoderSpace.objects.create(**values)
        elif (space.plugin, space.options, space.dim) != (
            values["plugin"],
            values["options"],
            values["dim"],
        ):
            raise reader.fail(
                f"encoder space {values['name']!r} already exists here with another encoder"
            )
        else:
            EncoderSpace.objects.filter(pk=space.pk).update(
                text_template=values["text_template"], status=values["status"]
            )
        if is_active:
            active = space
        report.spaces.append(space.name)
        count += 1
    if active is not None:
        EncoderSpace.objects.filter(is_active=True).exclude(pk=active.pk).update(is_active=False)
        EncoderSpace.objects.filter(pk=active.pk).update(is_active=True)
        spaces.create_index(active)
    if progress:
        progress("spaces", count)
    return count


def _restore_scenarios(reader: _Reader, report: RestoreReport, progress) -> int:
    count = 0
    for record in reader:
        reader.check_keys(record, [*SCENARIO_FIELDS, "space", "promotions"])
        values = reader.clean(Scenario, SCENARIO_FIELDS, record)
        if Scenario.objects.filter(name=values["name"]).exists():
            raise reader.fail(f"scenario {values['name']!r} already exists on this site")
        space_name = record.get("space")
        if space_name is not None:
            values["space"] = EncoderSpace.objects.filter(name=space_name).first()
            if values["space"] is None:
                raise reader.fail(f"unknown encoder space {space_name!r}")
        promotions = record.get("promotions") or []
        if not isinstance(promotions, list):
            raise reader.fail("promotions: not a list")
        updated_at = values.pop("updated_at")
        scenario = Scenario.objects.create(**values)
        Scenario.objects.filter(pk=scenario.pk).update(updated_at=updated_at or timezone.now())
        for promotion in promotions:
            if not isinstance(promotion, dict):
                raise reader.fail("promotions: not a list of objects")
            reader.check_keys(promotion, PROMOTION_FIELDS)
            Promotion.objects.create(
                scenario=scenario, **reader.clean(Promotion, PROMOTION_FIELDS, promotion)
            )
        count += 1
    if progress:
        progress("scenarios", count)
    return count


_RESTORERS = {
    "attributes": _restore_attributes,
    "spaces": _restore_spaces,
    "items": _restore_items,
    "users": _restore_users,
    "behaviours": _restore_behaviours,
    "scenarios": _restore_scenarios,
}
