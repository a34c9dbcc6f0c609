"""``manage.py train_ranker``: learn the ranking model from the site's own behaviours."""

from argparse import ArgumentTypeError

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recommender.conf import conf
from recommender.learning import ranker


def parse_negatives(raw: str) -> int | None:
    """``--negatives``: a positive count, or ``all`` for every other candidate of a pool."""
    if raw == "all":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ArgumentTypeError(f"{raw!r} is not a positive number or 'all'")
    return value


class Command(BaseCommand):
    help = (
        "Train a LightGBM lambdarank, factorization-machine or logistic ranker on candidate "
        "pools built from past behaviour, validate it on each user's second-to-last "
        "engagement against the fixed blend, and activate it only when it beats the blend "
        "overall and on the cold slice (or with --force); saved versioned under the data dir."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--kind", choices=ranker.KINDS, help="default: RECOMMENDER_RANKER (lambdarank)"
        )
        parser.add_argument(
            "--loss",
            choices=ranker.LOSSES,
            help="fm and logistic only: pointwise log loss, or pairwise (BPR, starting from the "
            "blend's weights); default: RECOMMENDER_RANKER_LOSS (pairwise)",
        )
        parser.add_argument("--max-users", type=int, default=300, help="0 for every user")
        parser.add_argument(
            "--cases-per-user",
            type=int,
            default=1,
            help="train on each user's N engagements before their last (default 1)",
        )
        parser.add_argument(
            "--negatives",
            type=parse_negatives,
            default=20,
            help="unengaged candidates kept per pool, or 'all' (default 20)",
        )
        parser.add_argument(
            "--epochs",
            type=int,
            default=300,
            help="training epochs (fm, logistic) or the most boosting rounds (lambdarank, "
            "early-stopped on validation NDCG@10)",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="activate the trained ranker even when the blend does better on validation",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        if options["cases_per_user"] < 1 or options["epochs"] < 1 or options["max_users"] < 0:
            raise CommandError("--cases-per-user and --epochs must be >= 1, --max-users >= 0")
        if options["loss"] and (options["kind"] or conf.RANKER) == "lambdarank":
            raise CommandError("--loss applies to the fm and logistic rankers, not lambdarank")
        quiet = options["no_progress"] or options["verbosity"] == 0
        bar = tqdm(desc="examples", unit=" pools", disable=quiet, file=self.stderr._out)

        def on_epoch(epoch: int, train: float | None, val: float) -> None:
            if train is None:  # lambdarank: a boosting round, scored on held-out pools
                if epoch % 10 == 0:
                    self.stdout.write(f"round {epoch:>4}: held-out NDCG@10 {val:.4f}")
            elif epoch % 50 == 0 or epoch == options["epochs"] - 1:
                self.stdout.write(f"epoch {epoch:>4}: train loss {train:.4f}, val loss {val:.4f}")

        try:
            report = ranker.train_and_save(
                kind=options["kind"],
                loss=options["loss"],
                max_users=options["max_users"] or None,
                cases_per_user=options["cases_per_user"],
                negatives=options["negatives"],
                epochs=options["epochs"],
                seed=options["seed"],
                force=options["force"],
                progress=bar.update,
                on_epoch=on_epoch,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        if report.kind == "lambdarank":
            first, best = report.val_loss[0], max(report.val_loss)
            curve = f"held-out NDCG@10 {first:.4f} after one round, {best:.4f} at the best"
        else:
            curve = f"val loss {report.val_loss[0]:.4f} → {report.val_loss[-1]:.4f}"
        self.stdout.write(
            f"trained {report.kind} ranker ({report.loss} loss) on {report.examples} examples "
            f"({report.positives} positive) from {report.users} users in {report.seconds:.1f}s; "
            f"{curve}"
        )
        if report.context_val_loss is not None:
            kept = "kept" if report.context_kept else "left out"
            self.stdout.write(
                f"context features {kept}: final val loss {report.context_val_loss:.4f} with "
                f"them, {report.plain_val_loss:.4f} without"
            )
        model, blend = report.validation["model"], report.validation["blend"]
        self.stdout.write(
            f"validation ({report.validation_cases} users' second-to-last engagement, "
            f"{model['cold_cases']} cold): NDCG@10 {model['ndcg']:.4f} vs blend "
            f"{blend['ndcg']:.4f} ({model['ndcg'] - blend['ndcg']:+.4f}); cold slice "
            f"{model['cold_ndcg']:.4f} vs {blend['cold_ndcg']:.4f} "
            f"({model['cold_ndcg'] - blend['cold_ndcg']:+.4f})"
        )
        if report.activated:
            why = "it won" if ranker.beats_blend(report.validation) else "forced"
            self.stdout.write(f"activated the {report.kind} ranker ({why}); saved {report.path}")
        else:
            self.stdout.write(
                f"the blend won: the {report.kind} ranker was not activated; serving uses the "
                f"blend (decision saved {report.path})"
            )
