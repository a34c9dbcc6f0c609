"""``manage.py check_copy``: write the blurb of every item for every reason kind in Chinese
and English, and check each one (recommender.serving.copycheck): mixed scripts, dangling
or lost negations, empty or repeated phrases, keyword debris, over-long copy, one blurb
for several items of a list. Exits 1 when it finds anything."""

from django.core.management.base import BaseCommand, CommandError

from recommender.models import Item
from recommender.serving import copycheck, explain
from recommender.serving.candidates import explain_text


class Command(BaseCommand):
    help = "Check the recommendation copy (blurbs) of the catalogue; exit 1 on any finding."

    def add_arguments(self, parser):
        parser.add_argument(
            "--sample",
            type=int,
            default=0,
            help="check N items spread evenly over the catalogue (default: every item)",
        )
        parser.add_argument(
            "--lang", choices=explain.LANGUAGES, action="append", help="only this language"
        )
        parser.add_argument(
            "--show", type=int, default=20, help="print at most N findings (default 20)"
        )

    def handle(self, *args, sample: int, lang: list[str] | None, show: int, **options):
        if sample < 0 or show < 0:
            raise CommandError("--sample and --show must not be negative")
        ids = list(Item.objects.order_by("pk").values_list("pk", flat=True))
        if sample and sample < len(ids):
            ids = [ids[i * len(ids) // sample] for i in range(sample)]
        if not ids:
            raise CommandError("no items to check: import a catalogue first")
        rows = Item.objects.in_bulk(ids)
        items = [(rows[pk].external_id, explain_text(rows[pk])) for pk in ids]
        report = copycheck.check_catalogue(items, languages=tuple(lang or explain.LANGUAGES))
        for finding in report.findings[:show]:
            self.stdout.write(str(finding))
        if len(report.findings) > show:
            self.stdout.write(f"… and {len(report.findings) - show} more")
        counts = ", ".join(f"{kind} {n}" for kind, n in report.counts().items() if n)
        self.stdout.write(
            f"{report.items} items, {report.blurbs} blurbs "
            f"({len(explain.REASON_KINDS)} reason kinds × {len(lang or explain.LANGUAGES)} "
            f"languages): {len(report.findings)} findings" + (f" ({counts})" if counts else "")
        )
        if report.findings:
            raise CommandError(f"{len(report.findings)} findings in the copy", returncode=1)
