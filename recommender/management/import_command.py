"""Shared plumbing of the ``import_items`` and ``import_behaviours`` commands."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recommender.ingest.fields import ImportFailed, ImportReport


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    """``["title=name", "external_id=sku"]`` → ``{"title": "name", "external_id": "sku"}``."""
    mapping = {}
    for pair in pairs:
        target, sep, source = pair.partition("=")
        if not sep or not target.strip() or not source.strip():
            raise CommandError(f"--map {pair!r}: expected FIELD=COLUMN")
        mapping[target.strip()] = source.strip()
    return mapping


class ImportCommand(BaseCommand):
    """Arguments, progress bars and error reporting common to both importers."""

    fields: tuple[str, ...] = ()

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="a .csv or .jsonl file (or a dataset folder)")
        parser.add_argument("--format", choices=["csv", "jsonl"], help="default: from the suffix")
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="FIELD=COLUMN",
            help=f"read FIELD from COLUMN; fields: {', '.join(self.fields)}",
        )
        parser.add_argument("--preset", choices=["movielens"], help="a known dataset layout")
        parser.add_argument("--dry-run", action="store_true", help="validate only, write nothing")
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    def run_import(self, options, do_import) -> ImportReport:
        bars: dict[str, tqdm] = {}
        quiet = options["no_progress"] or options["verbosity"] == 0

        def progress(phase: str, count: int) -> None:
            if quiet:
                return
            if phase not in bars:
                for bar in bars.values():
                    bar.close()
                bars[phase] = tqdm(desc=phase, unit=" rows", file=self.stderr._out, leave=False)
            bars[phase].update(count)

        try:
            report = do_import(progress)
        except ImportFailed as exc:
            raise CommandError(f"{exc} (nothing was written)") from None
        finally:
            for bar in bars.values():
                bar.close()
        return report

    def describe(self, report: ImportReport, noun: str) -> str:
        verb = "would import" if report.dry_run else "imported"
        return (
            f"{verb} {report.rows} {noun} ({report.created} new, {report.updated} updated"
            f"{f', {report.users_created} new users' if report.users_created else ''}) "
            f"in {report.seconds:.1f}s, {report.rows_per_second:,.0f} rows/s"
        )
