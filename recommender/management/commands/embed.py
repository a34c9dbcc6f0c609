"""``manage.py embed [--space S] [--stale|--all]``: encode items in this process, no worker."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recommender import spaces
from recommender.models import EncoderSpace, Item
from recommender.spaces import embedding


class Command(BaseCommand):
    help = (
        "Encode item texts into an encoder space right here (no worker needed): by default "
        "only items whose vector is missing or stale. Creates the default space on a new site."
    )

    def add_arguments(self, parser):
        parser.add_argument("--space", help="space name (default: the active space)")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--stale", action="store_true", help="missing or stale (default)")
        which.add_argument("--all", action="store_true", help="every active item, fresh or not")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        if options["space"]:
            space = EncoderSpace.objects.filter(name=options["space"]).first()
            if space is None:
                names = ", ".join(EncoderSpace.objects.values_list("name", flat=True)) or "none"
                raise CommandError(f"no encoder space {options['space']!r} (spaces: {names})")
        else:
            space = spaces.ensure_default_space()
        if space.status == "retired":
            raise CommandError(f"space {space.name!r} is retired")
        if options["all"]:
            ids = list(
                Item.objects.filter(is_active=True).order_by("pk").values_list("pk", flat=True)
            )
        else:
            ids = list(spaces.items_needing_vectors(space))
        self.stderr.write(f"space {space.name} ({space.plugin}, {space.dim}d): {len(ids)} items")
        quiet = options["no_progress"] or options["verbosity"] == 0
        with tqdm(total=len(ids), unit=" texts", disable=quiet, file=self.stderr._out) as bar:
            report = embedding.embed_inline(space, ids, force=options["all"], progress=bar.update)
        spaces.mark_ready_if_complete(space)
        self.stdout.write(
            f"embedded {report.embedded} items, skipped {report.skipped} fresh, "
            f"in {report.seconds:.1f}s ({report.texts_per_second:,.0f} texts/s)"
        )
