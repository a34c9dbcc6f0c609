"""``manage.py export DIR``: the whole site as JSONL files and a manifest (no vectors)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recommender.ingest import backup


class Command(BaseCommand):
    help = (
        "Write items, end users, behaviours, scenarios (with promotions), attribute "
        "declarations and encoder-space definitions into DIR as JSONL files plus a "
        "manifest.json; vectors are not exported (`embed` rebuilds them after import_all)."
    )

    def add_arguments(self, parser):
        parser.add_argument("dir", type=Path, help="an empty (or new) folder")
        parser.add_argument("--force", action="store_true", help="write into a non-empty DIR")
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def handle(self, *args, **options):
        quiet = options["no_progress"] or options["verbosity"] == 0
        bar = tqdm(unit=" rows", disable=quiet, file=self.stderr._out, leave=False)

        def progress(kind: str, count: int) -> None:
            bar.set_description(kind, refresh=False)
            bar.update(count)

        try:
            manifest = backup.export_site(options["dir"], force=options["force"], progress=progress)
        except backup.BackupFailed as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        counts = ", ".join(f"{n} {kind}" for kind, n in manifest["counts"].items())
        self.stdout.write(f"exported {counts} to {options['dir']} in {manifest['seconds']:.1f}s")
