"""``manage.py import_all DIR``: restore an export into an empty site, all or nothing."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recommender.ingest import backup


class Command(BaseCommand):
    help = (
        "Restore a folder written by `manage.py export` into an empty site in one "
        "transaction: the first bad row (named by file and line) stops it and nothing is "
        "written. Co-occurrence is recomputed; vectors are rebuilt by `manage.py embed`."
    )

    def add_arguments(self, parser):
        parser.add_argument("dir", type=Path, help="a folder written by `manage.py export`")
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def handle(self, *args, **options):
        quiet = options["no_progress"] or options["verbosity"] == 0
        bar = tqdm(unit=" rows", disable=quiet, file=self.stderr._out, leave=False)

        def progress(kind: str, count: int) -> None:
            bar.set_description(kind, refresh=False)
            bar.update(count)

        try:
            report = backup.import_site(options["dir"], progress=progress)
        except backup.BackupFailed as exc:
            raise CommandError(f"{exc} (nothing was restored)") from None
        finally:
            bar.close()
        counts = ", ".join(f"{n} {kind}" for kind, n in report.counts.items())
        self.stdout.write(
            f"restored {counts} in {report.total_seconds:.1f}s; "
            f"{report.cooccurrence_rows} co-occurrence rows recomputed"
        )
        for name in report.spaces:
            self.stdout.write(f"next: `manage.py embed --space {name}` to rebuild its vectors")
