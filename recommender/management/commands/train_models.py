"""``manage.py train_models``: train the behaviour models (EASE, ALS, SASRec) on the
site's positive behaviours and save them where serving loads them."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recommender.learning import behaviour_models
from recommender.serving.behaviour_models import NAMES


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e5 else f"{n_bytes / 1e3:.1f} kB"


class Command(BaseCommand):
    help = (
        "Train behaviour models (ease: item-item closed form, als: implicit matrix "
        "factorisation, sasrec: self-attentive sequences) from positive behaviours; saved "
        "versioned under the data dir; serving uses the newest of each."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--model",
            action="append",
            choices=NAMES,
            help="a model to train (repeat for several; default: all three)",
        )
        parser.add_argument(
            "--epochs", type=int, help="SASRec's most epochs (default RECOMMENDER_SASREC_EPOCHS)"
        )
        parser.add_argument(
            "--no-validate",
            action="store_true",
            help="skip EASE's and ALS's leave-last-out figures (fit each once, not twice)",
        )
        parser.add_argument(
            "--validation-users",
            type=int,
            default=2000,
            help="users sampled for the validation figures (default 2000)",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        if options["epochs"] is not None and options["epochs"] < 1:
            raise CommandError("--epochs must be >= 1")
        if options["validation_users"] < 1:
            raise CommandError("--validation-users must be >= 1")
        models = options["model"] or list(NAMES)
        quiet = options["no_progress"] or options["verbosity"] == 0
        bars: dict[str, tqdm] = {}

        def progress(name: str, done: int, total: int) -> None:
            bar = bars.get(name)
            if bar is None:
                for other in bars.values():  # e.g. SASRec stopped early
                    other.close()
                bar = bars[name] = tqdm(
                    desc=name, total=total, disable=quiet, file=self.stderr._out
                )
            bar.update(done - bar.n)
            if done >= total:  # one bar at a time: the next model starts below it
                bar.close()

        try:
            trained = behaviour_models.train_and_save_all(
                models,
                progress=progress,
                epochs=options["epochs"],
                validate=not options["no_validate"],
                validation_users=options["validation_users"],
                seed=options["seed"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        finally:
            for bar in bars.values():
                bar.close()
        for model in trained:
            report = model.report
            line = (
                f"{report.name}: {report.items} items, {report.users} users, "
                f"{report.interactions} events; {_size(report.size_bytes)}; "
                f"{report.seconds:.1f}s"
            )
            figures = {key: value for key, value in report.validation.items() if "@" in key}
            if figures:
                shown = ", ".join(f"{key} {value:.4f}" for key, value in figures.items())
                users = int(report.validation["users"])
                line += f"; validation (last event of {users} users): {shown}"
            self.stdout.write(line)
            for note in report.notes:
                self.stdout.write(f"  {note}")
            if report.epochs:
                best = model.meta.get("best_epoch")
                self.stdout.write(
                    f"  {len(report.epochs)} epochs, best {best}; loss "
                    f"{report.epochs[0]['loss']:.3f} → {report.epochs[-1]['loss']:.3f}"
                )
            self.stdout.write(f"  saved {report.path}")
