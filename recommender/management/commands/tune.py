"""``manage.py tune``: search the fixed blend's weights on the validation split."""

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recommender.learning import evaluation, tuning
from recommender.serving.learned import load_latest_scorer


class Command(BaseCommand):
    help = (
        "Tune the fixed blend's weights on the validation split (each user's second-to-last "
        "positive event; the test split is never read): seeded random search around the "
        "defaults, then coordinate refinement. Stores the best as the default scenario's "
        "blend weights when it beats the defaults (not with --dry-run)."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # A bad argument gets one line (argparse's error), not the usage block before it.
        parser.print_usage = lambda file=None: None
        return parser

    def add_arguments(self, parser):
        parser.add_argument("--trials", type=int, default=200, help="weight vectors to try")
        parser.add_argument(
            "--max-users",
            type=int,
            default=0,
            help="sample at most N validation users (seeded); 0: every eligible user",
        )
        parser.add_argument("--seed", type=int, default=0, help="seed of the sample and search")
        parser.add_argument(
            "--spread",
            type=float,
            default=0.5,
            help="random draws scale each weight by exp(spread × N(0, 1))",
        )
        parser.add_argument(
            "--min-rating",
            type=float,
            default=3.5,
            help="ratings below this are not a positive target",
        )
        parser.add_argument(
            "--resamples", type=int, default=1000, help="bootstrap resamples of the users"
        )
        parser.add_argument(
            "--require-interval",
            action="store_true",
            help="store only when the 95%% interval of best - defaults lies above 0",
        )
        parser.add_argument("--dry-run", action="store_true", help="print, store nothing")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        for name, low in (("trials", 1), ("max_users", 0), ("resamples", 10)):
            if options[name] < low:
                raise CommandError(f"--{name.replace('_', '-')} must be at least {low}")
        if not 0 < options["spread"] <= 5:
            raise CommandError("--spread must be more than 0 and at most 5")
        cases = evaluation.split(
            "validation",
            max_users=options["max_users"] or None,
            seed=options["seed"],
            min_rating=options["min_rating"],
        )
        if not cases:
            raise CommandError(
                "nothing to tune on: no user has three positive events (validation needs "
                "one before the second-to-last)"
            )
        quiet = options["no_progress"] or options["verbosity"] == 0
        out = self.stderr._out
        started = time.perf_counter()
        with tqdm(total=len(cases), unit=" pools", disable=quiet, file=out) as bar:
            pools = tuning.build_pools(cases, progress=bar.update)
        pools_seconds = time.perf_counter() - started
        current = tuning.default_scenario_weights()
        with tqdm(total=options["trials"], unit=" trials", disable=quiet, file=out) as bar:
            result = tuning.search(
                pools,
                trials=options["trials"],
                seed=options["seed"],
                spread=options["spread"],
                start=current,
                resamples=options["resamples"],
                progress=bar.update,
            )
        self._print(result, options["resamples"], pools_seconds)
        if not result.beats_defaults:
            self.stdout.write("not stored: no weights beat the defaults on validation")
        elif options["require_interval"] and result.improvement.low <= 0:
            self.stdout.write("not stored: the interval of best - defaults includes 0")
        elif current is not None and result.best == {**result.defaults, **current}:
            self.stdout.write("not stored: the default scenario already has the best weights")
        elif options["dry_run"]:
            self.stdout.write("not stored (--dry-run)")
        else:
            try:
                scenario = tuning.store(result.best)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"stored as the blend weights of scenario {scenario.name!r}")
            if scenario.use_learned_ranker and load_latest_scorer() is not None:
                self.stdout.write(
                    "note: with blend weights set, this scenario ranks with the blend, not "
                    "the learned ranker; compare both on the test split: manage.py evaluate "
                    "--recommenders full+learned,full+scenario"
                )

    def _print(self, result: tuning.TuningResult, resamples: int, pools_seconds: float) -> None:
        k = result.k
        self.stdout.write(
            f"validation split: {result.cases} cases; pools in {pools_seconds:.0f}s, "
            f"{result.trials} trials in "
            f"{result.seconds:.1f}s; searched {', '.join(result.searched) or 'nothing'} "
            "(the other features are constant within every pool)"
        )
        columns = ["default", "best"] + (["scenario"] if result.current else [])
        self.stdout.write(f"{'feature':<20}" + "".join(f"{c:>10}" for c in columns))
        for name, value in result.defaults.items():
            cells = [value, result.best[name]] + ([result.current[name]] if result.current else [])
            self.stdout.write(f"{name:<20}" + "".join(f"{v:>10.4f}" for v in cells))
        delta = result.improvement
        self.stdout.write(
            f"validation NDCG@{k}: defaults {result.default_ndcg:.4f}, best "
            f"{result.best_ndcg:.4f}"
            + (
                f", default scenario {result.current_ndcg:.4f}"
                if result.current_ndcg is not None
                else ""
            )
        )
        self.stdout.write(
            f"best - defaults: {delta.estimate:+.4f} [{delta.low:+.4f}, {delta.high:+.4f}] "
            f"(95% paired bootstrap over the cases, {resamples} resamples; optimistic: the "
            "search chose on these cases, so confirm on the test split)"
        )
