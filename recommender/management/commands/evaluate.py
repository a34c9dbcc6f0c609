"""``manage.py evaluate``: offline metrics of the serving pipeline and its baselines."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recommender.ingest.fields import parse_datetime
from recommender.learning import evaluation, reports


class Command(BaseCommand):
    help = (
        "Evaluate the recommender offline: leave-one-out by time (default; --split test "
        "holds out each user's last positive event, --split validation the one before it) "
        "or a global temporal split (--before). Prints the metrics and paired bootstrap "
        "intervals, writes JSON and PNG charts, stores a run."
    )

    def add_arguments(self, parser):
        parser.add_argument("--before", help="temporal split at this date (ISO 8601)")
        parser.add_argument(
            "--split",
            choices=list(evaluation.SPLITS),
            default="test",
            help="leave-one-out target: test (last positive event, the default) or "
            "validation (second-to-last; tune on this one)",
        )
        parser.add_argument("--k", type=int, nargs="+", default=[10], help="cut-offs, e.g. 5 10 20")
        parser.add_argument(
            "--max-users",
            type=int,
            default=300,
            help="sample at most N users (seeded); 0: every eligible user",
        )
        parser.add_argument("--seed", type=int, default=0, help="seed of the sample and bootstrap")
        parser.add_argument(
            "--min-rating",
            type=float,
            default=3.5,
            help="ratings below this are not a positive target",
        )
        parser.add_argument(
            "--cold-threshold",
            type=int,
            default=5,
            help="targets with fewer training users form the cold-start slice",
        )
        parser.add_argument("--out", help="report folder (default: DATA_DIR/reports/eval-TIME)")
        parser.add_argument(
            "--recommenders",
            "--only",
            dest="recommenders",
            help="comma-separated recommenders, e.g. text,full (default: every one that can "
            f"run; registered: {', '.join(evaluation.registered())})",
        )
        parser.add_argument(
            "--reference",
            help="compare every recommender with this one (default: the best NDCG@10)",
        )
        parser.add_argument(
            "--resamples", type=int, default=1000, help="bootstrap resamples of the users"
        )
        parser.add_argument("--no-charts", action="store_true")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        if any(k < 1 or k > 200 for k in options["k"]):
            raise CommandError("--k values must be between 1 and 200")
        if options["max_users"] < 0:
            raise CommandError("--max-users must be 0 (every user) or more")
        if options["resamples"] < 10:
            raise CommandError("--resamples must be at least 10")
        cases, protocol, split = self._cases(options)
        if not cases:
            raise CommandError("nothing to evaluate: no user has history and held-out events")
        configs = self._recommenders(options["recommenders"])
        names = [config.name for config in configs]
        if options["reference"] and options["reference"] not in names:
            raise CommandError(
                f"--reference: {options['reference']!r} is not evaluated "
                f"(choose from {', '.join(names)})"
            )
        quiet = options["no_progress"] or options["verbosity"] == 0
        with tqdm(total=len(cases), unit=" users", disable=quiet, file=self.stderr._out) as bar:
            report = evaluation.evaluate(
                cases,
                protocol=protocol,
                ks=options["k"],
                recommenders=configs,
                cold_threshold=options["cold_threshold"],
                progress=bar.update,
                split=split,
                reference=options["reference"],
                resamples=options["resamples"],
                seed=options["seed"],
            )
        params = {
            key: options[key]
            for key in (
                "k",
                "max_users",
                "seed",
                "min_rating",
                "cold_threshold",
                "before",
                "reference",
                "resamples",
            )
        }
        params["split"] = split
        params["recommenders"] = names
        out = Path(options["out"]) if options["out"] else None
        run, written = reports.record(report, params, out, charts=not options["no_charts"])
        self.stdout.write(
            f"{protocol}: {report.cases} cases, space {report.space}, {report.seconds:.0f}s"
        )
        self.stdout.write(reports.table(report))
        self.stdout.write(reports.intervals_table(report))
        if report.cold_start:
            self.stdout.write(f"cold-start targets (< {report.cold_threshold} training users):")
            self.stdout.write(reports.table(report, "cold_start"))
        self.stdout.write(f"report: {', '.join(str(p) for p in written)} (run #{run.pk})")

    def _cases(self, options) -> tuple[list, str, str | None]:
        """The cases, the protocol's description and the split's name (None: temporal)."""
        max_users = options["max_users"] or None  # 0: every user
        if options["before"]:
            if options["split"] != "test":
                raise CommandError("--split is for leave-one-out; --before is a temporal split")
            before = parse_datetime(options["before"])
            if before is None:
                raise CommandError(f"--before: not a date: {options['before']!r}")
            cases = evaluation.temporal_split(
                before, max_users=max_users, seed=options["seed"], min_rating=options["min_rating"]
            )
            return cases, f"temporal split at {before:%Y-%m-%d}", None
        split = options["split"]
        cases = evaluation.split(
            split, max_users=max_users, seed=options["seed"], min_rating=options["min_rating"]
        )
        return cases, f"leave-one-out by time, {split} split", split

    def _recommenders(self, wanted: str | None) -> list:
        if not wanted:
            return evaluation.recommenders()
        names = [name.strip() for name in wanted.split(",") if name.strip()]
        try:
            return evaluation.recommenders(names)
        except evaluation.UnknownRecommender as exc:
            raise CommandError(f"--recommenders: {exc}") from exc
