"""``manage.py calibrate_explanations``: the similarity a reason needs before it names an
item, measured per encoder space and written where serving reads it."""

from django.core.management.base import BaseCommand, CommandError

from recommender import spaces
from recommender.learning import explanations
from recommender.models import EncoderSpace


class Command(BaseCommand):
    help = (
        "Measure, per encoder space, the cosine of random item pairs and of next-engaged "
        "pairs; store the --quantile of the random pairs as the threshold a similarity "
        "reason must reach (RECSITE_DATA_DIR/models/explain/<space>.json)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--space", help="a space's name (default: the active one)")
        parser.add_argument("--all", action="store_true", help="every ready space")
        parser.add_argument("--quantile", type=float, default=explanations.QUANTILE)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--dry-run", action="store_true", help="measure, do not store")

    def handle(self, *args, **options):
        if options["all"]:
            chosen = list(EncoderSpace.objects.filter(status="ready").order_by("name"))
        elif options["space"]:
            chosen = list(EncoderSpace.objects.filter(name=options["space"]))
            if not chosen:
                raise CommandError(f"no encoder space named {options['space']!r}")
        else:
            active = spaces.active_space()
            if active is None:
                raise CommandError("no active encoder space: create one first")
            chosen = [active]
        for space in chosen:
            try:
                result = explanations.calibrate(
                    space, quantile=options["quantile"], seed=options["seed"]
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            where = "not stored (--dry-run)"
            if not options["dry_run"]:
                where = f"stored in {explanations.save_calibration(result)}"
            self.stdout.write(
                f"space {space.name}: threshold {result.threshold:.4f} (quantile "
                f"{result.quantile} of {result.random_pairs} random pairs, median "
                f"{result.random_median:.4f}); next-engaged pairs: {result.next_pairs}, median "
                f"{result.next_median:.4f}, {result.next_above:.0%} at or above; {where}"
            )
