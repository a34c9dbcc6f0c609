"""Reading import files: CSV or JSONL, the encoding detected, one :class:`Row` per record."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

from recommender.ingest.fields import ImportFailed, Row


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
