"""``manage.py import_items FILE``: upsert items from CSV/JSONL, all or nothing."""

from django.core.management.base import CommandError

from recommender.ingest import movielens
from recommender.ingest.files import read_rows
from recommender.ingest.items import ITEM_FIELDS, import_items
from recommender.management.import_command import ImportCommand, parse_mapping


class Command(ImportCommand):
    help = (
        "Upsert items by external_id from a CSV (header row) or JSONL file. Columns that are "
        "not item fields go into attributes. The first bad row stops the import; nothing is "
        "written."
    )
    fields = ITEM_FIELDS

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--no-embed", action="store_true", help="do not queue embedding of changed items"
        )

    def handle(self, *args, **options):
        path = options["file"]
        if not path.exists():
            raise CommandError(f"{path}: no such file or folder")
        mapping = parse_mapping(options["map"])
        if options["preset"] == "movielens":
            rows = movielens.movielens_items(path)
        else:
            rows = read_rows(path, options["format"])
        report = self.run_import(
            options,
            lambda progress: import_items(
                rows, mapping=mapping, dry_run=options["dry_run"], progress=progress
            ),
        )
        self.stdout.write(self.describe(report, "items"))
        if not options["dry_run"] and report.rows and not options["no_embed"]:
            self.queue_embeddings()

    def queue_embeddings(self) -> None:
        """New and changed texts are found by hash and embedded by the workers, in batches."""
        from recommender.tasks import refresh_stale_vectors

        try:
            refresh_stale_vectors.apply_async(retry=False)
        except Exception as exc:  # broker down: the beat schedule will catch up
            self.stderr.write(f"could not queue embeddings ({exc}); run `manage.py embed`")
        else:
            self.stdout.write("queued embedding of new and changed items")
