"""``manage.py evaluate``: offline metrics of the serving pipeline and its baselines."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recommender.ingest.fields import parse_datetime
from recommender.learning import evaluation, reports
from recommender.serving import learned


class Command(BaseCommand):
    help = (
        "Evaluate the recommender offline: leave-one-out by time (default) or a global "
        "temporal split (--before). Prints a table, writes JSON and PNG charts, stores a run."
    )

    def add_arguments(self, parser):
        parser.add_argument("--before", help="temporal split at this date (ISO 8601)")
        parser.add_argument("--k", type=int, nargs="+", default=[10], help="cut-offs, e.g. 5 10 20")
        parser.add_argument("--max-users", type=int, default=300, help="sample at most N cases")
        parser.add_argument("--seed", type=int, default=0)
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
            "--only", help="comma-separated recommenders, e.g. text,full (default: all)"
        )
        parser.add_argument("--no-charts", action="store_true")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        if any(k < 1 or k > 200 for k in options["k"]):
            raise CommandError("--k values must be between 1 and 200")
        if options["before"]:
            before = parse_datetime(options["before"])
            if before is None:
                raise CommandError(f"--before: not a date: {options['before']!r}")
            cases = evaluation.temporal_split(
                before,
                max_users=options["max_users"],
                seed=options["seed"],
                min_rating=options["min_rating"],
            )
            protocol = f"temporal split at {before:%Y-%m-%d}"
        else:
            cases = evaluation.leave_one_out(
                max_users=options["max_users"],
                seed=options["seed"],
                min_rating=options["min_rating"],
            )
            protocol = "leave-one-out by time"
        if not cases:
            raise CommandError("nothing to evaluate: no user has history and held-out events")
        scorer = learned.load_latest_scorer()
        configs = evaluation.baselines(scorer)
        if options["only"]:
            wanted = {name.strip() for name in options["only"].split(",") if name.strip()}
            unknown = wanted - {config.name for config in configs}
            if unknown:
                names = ", ".join(config.name for config in configs)
                raise CommandError(f"--only: unknown {sorted(unknown)[0]!r} (choose from {names})")
            configs = [config for config in configs if config.name in wanted]
        quiet = options["no_progress"] or options["verbosity"] == 0
        with tqdm(total=len(cases), unit=" users", disable=quiet, file=self.stderr._out) as bar:
            report = evaluation.evaluate(
                cases,
                protocol=protocol,
                ks=options["k"],
                recommenders=configs,
                cold_threshold=options["cold_threshold"],
                progress=bar.update,
            )
        params = {
            key: options[key]
            for key in ("k", "max_users", "seed", "min_rating", "cold_threshold", "before")
        }
        out = Path(options["out"]) if options["out"] else None
        run, written = reports.record(report, params, out, charts=not options["no_charts"])
        self.stdout.write(
            f"{protocol}: {report.cases} cases, space {report.space}, {report.seconds:.0f}s"
        )
        self.stdout.write(reports.table(report))
        if report.cold_start:
            self.stdout.write(f"cold-start targets (< {report.cold_threshold} training users):")
            self.stdout.write(reports.table(report, "cold_start"))
        self.stdout.write(f"report: {', '.join(str(p) for p in written)} (run #{run.pk})")
