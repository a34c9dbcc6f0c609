"""``manage.py train_ranker``: learn the ranking model from the site's own behaviours."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recommender import learning


class Command(BaseCommand):
    help = (
        "Train a logistic-regression or factorization-machine ranker on candidate pools built "
        "from past behaviour; saved versioned under the data dir; serving uses the newest."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--kind", choices=learning.KINDS, help="default: settings.RECOMMENDER_RANKER (logistic)"
        )
        parser.add_argument("--max-users", type=int, default=300)
        parser.add_argument("--epochs", type=int, default=300)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        quiet = options["no_progress"] or options["verbosity"] == 0
        bar = tqdm(desc="examples", unit=" users", disable=quiet, file=self.stderr._out)

        def on_epoch(epoch: int, train: float, val: float) -> None:
            if epoch % 50 == 0 or epoch == options["epochs"] - 1:
                self.stdout.write(f"epoch {epoch:>4}: train loss {train:.4f}, val loss {val:.4f}")

        try:
            report = learning.train_and_save(
                kind=options["kind"],
                max_users=options["max_users"],
                epochs=options["epochs"],
                seed=options["seed"],
                progress=bar.update,
                on_epoch=on_epoch,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        self.stdout.write(
            f"trained {report.kind} ranker on {report.examples} examples "
            f"({report.positives} positive) from {report.users} users in {report.seconds:.1f}s; "
            f"val loss {report.val_loss[0]:.4f} → {report.val_loss[-1]:.4f}; saved {report.path}"
        )
