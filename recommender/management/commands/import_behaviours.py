"""``manage.py import_behaviours FILE``: append behaviour events from CSV/JSONL, all or nothing."""

from django.core.management.base import CommandError

from recommender.ingest import movielens
from recommender.ingest.behaviours import BEHAVIOUR_FIELDS, BEHAVIOUR_KINDS, import_behaviours
from recommender.ingest.files import read_rows
from recommender.management.import_command import ImportCommand, parse_mapping


class Command(ImportCommand):
    help = (
        "Append behaviour events from a CSV (header row) or JSONL file. Users are created on "
        "the fly; items must exist. Optional recommendation_id (the served list's UUID) and "
        "position (1-based) columns tie events to lists; an impression needs its list. The "
        "first bad row stops the import; nothing is written."
    )
    fields = BEHAVIOUR_FIELDS

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--kind",
            choices=BEHAVIOUR_KINDS,
            help="the kind for rows without a kind column",
        )
        parser.add_argument(
            "--skip-existing",
            action="store_true",
            help="skip rows whose event_id is already stored instead of failing",
        )

    def handle(self, *args, **options):
        path = options["file"]
        if not path.exists():
            raise CommandError(f"{path}: no such file or folder")
        mapping = parse_mapping(options["map"])
        if options["preset"] == "movielens":
            rows = movielens.movielens_behaviours(path)
        else:
            rows = read_rows(path, options["format"])
        report = self.run_import(
            options,
            lambda progress: import_behaviours(
                rows,
                mapping=mapping,
                default_kind=options["kind"],
                skip_existing=options["skip_existing"],
                dry_run=options["dry_run"],
                progress=progress,
            ),
        )
        self.stdout.write(self.describe(report, "behaviours"))
        if report.extra.get("skipped_existing"):
            self.stdout.write(f"skipped {report.extra['skipped_existing']} already-stored events")
