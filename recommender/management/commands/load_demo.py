"""``manage.py load_demo``: the bilingual demo shop (items, shoppers, behaviours), idempotent."""

from django.core.management import call_command
from django.core.management.base import BaseCommand

from recommender.demo import load
from recommender.serving import cooccurrence


class Command(BaseCommand):
    help = (
        "Load the bilingual demo shop (352 items in 8 categories, 72 shoppers with personas, "
        "~8,400 behaviours), embed it and calibrate its explanations. Running it again adds "
        "nothing twice."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=20261125)
        parser.add_argument("--no-embed", action="store_true", help="skip embedding the items")

    def handle(self, *args, **options):
        report = load.load(seed=options["seed"])
        self.stdout.write(
            f"demo items: {report.items.created} new, {report.items.updated} updated; "
            f"shoppers: {report.users_created} new; behaviours: {report.behaviours.rows} new, "
            f"{report.behaviours.extra.get('skipped_existing', 0)} already loaded"
        )
        if not options["no_embed"]:
            call_command("embed", stdout=self.stdout, stderr=self.stderr, no_progress=True)
            # The similarity a reason needs before it names an item, measured in this space.
            call_command("calibrate_explanations", stdout=self.stdout, stderr=self.stderr)
        pairs = cooccurrence.refresh_cooccurrence()
        self.stdout.write(f"co-occurrence: {pairs} item pairs")
