"""``manage.py finetune --space S``: fine-tune a space's model on the site's own behaviour.

The result is a new, inactive space on the fine-tuned weights (blue/green): it is built
like any new space, and an operator activates it after checking it.
"""

from argparse import ArgumentTypeError
from datetime import datetime, time

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from tqdm import tqdm

from recommender.learning import finetune, pairs
from recommender.models import EncoderSpace


def parse_cut(raw: str) -> datetime:
    """``--before``: a date (midnight, site time zone) or an ISO date-time."""
    try:
        moment = parse_datetime(raw)
        if moment is None and (day := parse_date(raw)) is not None:
            moment = datetime.combine(day, time.min)
    except ValueError:
        moment = None
    if moment is None:
        raise ArgumentTypeError(f"{raw!r} is not a date (2024-05-01) or an ISO date-time")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Command(BaseCommand):
    help = (
        "Fine-tune a sentence-transformers or bert space's model on pairs from the site's own "
        "behaviour (items engaged together, searches and the item engaged next), save it, and "
        "create a new space on it. The new space is not activated."
    )

    def add_arguments(self, parser):
        parser.add_argument("--space", required=True, help="the space whose model to fine-tune")
        parser.add_argument("--epochs", type=int, default=1)
        parser.add_argument("--max-pairs", type=int, default=5000)
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument(
            "--learning-rate", type=float, default=finetune.LEARNING_RATE, help="AdamW's peak"
        )
        parser.add_argument(
            "--max-seq-length",
            type=int,
            help="truncate training texts to N tokens (faster; the saved model keeps its limit)",
        )
        parser.add_argument(
            "--device", help="cpu or cuda (default: cuda when torch sees a GPU, else cpu)"
        )
        parser.add_argument("--name", help="name of the new space (default: SPACE-ft-N)")
        parser.add_argument(
            "--before",
            type=parse_cut,
            help="use only behaviours before this date or date-time (for offline evaluation)",
        )
        parser.add_argument(
            "--leave-one-out",
            action="store_true",
            help="leave out each user's last positive engagement and all that followed it "
            "(what `evaluate` holds out by default), for offline evaluation",
        )
        parser.add_argument(
            "--no-build", action="store_true", help="create the new space; do not queue its build"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        if options["epochs"] < 1 or options["max_pairs"] < 1 or options["batch_size"] < 2:
            raise CommandError("--epochs and --max-pairs must be >= 1, --batch-size >= 2")
        length = options["max_seq_length"]
        if options["learning_rate"] <= 0 or (length is not None and length < 2):
            raise CommandError("--learning-rate must be > 0 and --max-seq-length >= 2")
        space = EncoderSpace.objects.filter(name=options["space"]).first()
        if space is None:
            names = ", ".join(EncoderSpace.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"no encoder space {options['space']!r} (spaces: {names})")
        try:
            finetune.check_finetunable(space)
            device = finetune.check_device(options["device"] or default_device())
            name = finetune.check_space_name(options["name"] or finetune.next_space_name(space))
        except (ValidationError, ImproperlyConfigured) as exc:
            message = exc.messages[0] if isinstance(exc, ValidationError) else str(exc)
            raise CommandError(message) from None

        user_cuts = pairs.leave_one_out_cuts() if options["leave_one_out"] else None
        training = pairs.build_pairs(
            space,
            before=options["before"],
            user_cuts=user_cuts,
            max_pairs=options["max_pairs"],
            seed=options["seed"],
        )
        cut = f" before {options['before']:%Y-%m-%d %H:%M}" if options["before"] else ""
        if user_cuts is not None:
            cut += f", {len(user_cuts)} users' last engagements held out"
        if not training.pairs:
            raise CommandError(
                f"no training pairs: {training.events} behaviour(s){cut} hold no two items engaged "
                "close together by one user and no search followed by an engagement"
            )
        self.stdout.write(
            f"{len(training)} training pairs ({training.co_engagement} co-engagement, "
            f"{training.search} search) from {training.events} behaviours{cut}"
        )

        quiet = options["no_progress"] or options["verbosity"] == 0
        with tqdm(unit=" steps", disable=quiet, file=self.stderr._out) as bar:

            def on_step(step: int, total: int, loss: float) -> None:
                bar.total = total
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                bar.update(1)

            try:
                report = finetune.finetune(
                    space,
                    training.pairs,
                    epochs=options["epochs"],
                    batch_size=options["batch_size"],
                    device=device,
                    seed=options["seed"],
                    learning_rate=options["learning_rate"],
                    max_seq_length=length,
                    on_step=on_step,
                )
            except pairs.NoTrainingPairs as exc:
                raise CommandError(f"no training pairs: {exc}") from None
            except ImproperlyConfigured as exc:
                raise CommandError(str(exc)) from None
        for epoch, loss in enumerate(report.epoch_losses, start=1):
            self.stdout.write(f"epoch {epoch}: mean loss {loss:.4f}")
        self.stdout.write(
            f"{report.steps} steps over {report.pairs} pairs on {device} in "
            f"{report.seconds:.1f}s; batch loss "
            f"{report.first_loss:.4f} first, {report.last_loss:.4f} last"
        )
        self.stdout.write(f"model saved to {report.output_path}")

        try:
            new = finetune.create_finetuned_space(space, report.output_path, name)
        except (ValidationError, ImproperlyConfigured) as exc:
            message = exc.messages[0] if isinstance(exc, ValidationError) else str(exc)
            raise CommandError(
                f"{message}; the model is saved, create a space on it with `manage.py "
                f"encoder_space create NAME --plugin sentence-transformers "
                f"--option model={report.output_path}`"
            ) from None
        self.stdout.write(f"created {new} (not active)")
        if options["no_build"]:
            self.stdout.write(f"build it with `manage.py embed --space {new.name}`")
        else:
            from recommender.tasks import build_space

            build_space.delay(new.pk)
            self.stdout.write("build queued; `manage.py encoder_space list` shows progress")
        self.stdout.write(
            f"once built and checked, serve it with `manage.py encoder_space activate {new.name}`"
        )
