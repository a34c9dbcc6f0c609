"""``manage.py explanation_fidelity``: how often an item explained by an anchor drops from
the list when the anchor is left out of the user's history, per reason type."""

import json

from django.core.management.base import BaseCommand
from tqdm import tqdm

from recommender.learning import explanations


class Command(BaseCommand):
    help = (
        "Re-rank each sampled user's list without each anchor its reasons name; report the "
        "share of those items that drop (out of the top k, or more than --max-shift "
        "positions down) per reason type, with 95 %% Wilson intervals."
    )

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, default=100, help="the first N users")
        parser.add_argument("--k", type=int, default=explanations.K)
        parser.add_argument("--lang", default="zh", choices=["zh", "en"])
        parser.add_argument("--max-shift", type=int, default=explanations.MAX_SHIFT)
        parser.add_argument("--json", action="store_true", help="print the table as JSON")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        users = explanations.sample_users(options["users"])
        quiet = options["no_progress"] or options["verbosity"] == 0
        with tqdm(total=len(users), unit=" users", disable=quiet, file=self.stderr._out) as bar:
            report = explanations.fidelity(
                users,
                k=options["k"],
                lang=options["lang"],
                max_shift=options["max_shift"],
                progress=bar.update,
            )
        if options["json"]:
            self.stdout.write(json.dumps(report.by_type(), indent=2))
        else:
            self.stdout.write(explanations.format_report(report))
