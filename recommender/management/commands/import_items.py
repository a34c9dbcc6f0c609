"""``manage.py import_items FILE``: upsert items from CSV/JSONL, all or nothing."""

from django.core.management.base import CommandError

from recommender import importing, presets
from recommender.management.import_command import ImportCommand, parse_mapping


class Command(ImportCommand):
    help = (
        "Upsert items by external_id from a CSV (header row) or JSONL file. Columns that are "
        "not item fields go into attributes. The first bad row stops the import; nothing is "
        "written."
    )
    fields = importing.ITEM_FIELDS

    def handle(self, *args, **options):
        path = options["file"]
        if not path.exists():
            raise CommandError(f"{path}: no such file or folder")
        mapping = parse_mapping(options["map"])
        if options["preset"] == "movielens":
            rows = presets.movielens_items(path)
        else:
            rows = importing.read_rows(path, options["format"])
        report = self.run_import(
            options,
            lambda progress: importing.import_items(
                rows, mapping=mapping, dry_run=options["dry_run"], progress=progress
            ),
        )
        self.stdout.write(self.describe(report, "items"))
