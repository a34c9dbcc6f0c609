"""``manage.py finetune --space S``: fine-tune a space's model on the site's own behaviour.

The result is a new, inactive space on the fine-tuned weights (blue/green): it is built
like any new space, and an operator activates it after checking it. When the fine-tuned
model retrieves the held-out pairs no better than its base (or collapses the space), no
model is saved, no space is created, and the command exits with status 3
(``REFUSED_EXIT``) so that a script's next step (embed, activate) does not run; ``--force``
creates the space anyway.
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

# Exit status when the fine-tuned model is not better than its base and no space was
# created: not 1 (an error: bad options, no pairs), so a script can tell them apart.
REFUSED_EXIT = 3


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


def describe(scores: finetune.RetrievalScores) -> str:
    return (
        f"validation recall@{finetune.RECALL_AT} {scores.recall_at_10:.4f}, "
        f"MRR {scores.mrr:.4f}, mean cosine {scores.mean_cosine:.4f}"
    )


class Command(BaseCommand):
    help = (
        "Fine-tune a sentence-transformers or bert space's model on pairs from the site's own "
        "behaviour (items engaged together, searches and the item engaged next), save it, and "
        "create a new space on it. The new space is not activated. Held-out pairs are "
        "scored before and after each epoch; the best epoch is kept, and when it is not better "
        "than the base model no space is created (exit status 3; --force creates it anyway)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--space", required=True, help="the space whose model to fine-tune")
        parser.add_argument("--epochs", type=int, default=1, help="at most this many")
        parser.add_argument(
            "--patience",
            type=int,
            default=finetune.PATIENCE,
            help="stop after N epochs without a better validation",
        )
        parser.add_argument("--max-pairs", type=int, default=5000)
        parser.add_argument(
            "--max-pairs-per-item",
            type=int,
            default=pairs.MAX_PAIRS_PER_ITEM,
            help="no item or search text in more pairs than this (0: no cap)",
        )
        parser.add_argument(
            "--validation-share",
            type=float,
            default=pairs.VALIDATION_SHARE,
            help="share of the pairs held out, whole anchors at a time, to validate on "
            "(not with --leave-one-out, which validates on the validation split)",
        )
        parser.add_argument(
            "--min-spread-kept",
            type=float,
            default=finetune.MIN_SPREAD_KEPT,
            help="an epoch that keeps less than this share of the base's spread (1 - mean "
            "pairwise cosine of items) is collapsing and never kept",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="create the space even when it validates no better than the base model",
        )
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
            help="validate on `evaluate`'s validation split (each user's second-to-last "
            "positive engagement) and train only on what came before it, so the test split "
            "stays unseen for `evaluate`",
        )
        parser.add_argument(
            "--no-build", action="store_true", help="create the new space; do not queue its build"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        if options["epochs"] < 1 or options["max_pairs"] < 1 or options["batch_size"] < 2:
            raise CommandError("--epochs and --max-pairs must be >= 1, --batch-size >= 2")
        if options["patience"] < 1 or options["max_pairs_per_item"] < 0:
            raise CommandError("--patience must be >= 1 and --max-pairs-per-item >= 0")
        if not 0 < options["validation_share"] < 1 or not 0 <= options["min_spread_kept"] <= 1:
            raise CommandError("--validation-share and --min-spread-kept must be between 0 and 1")
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

        user_cuts = held_out = None
        if options["leave_one_out"]:
            user_cuts, held_out = pairs.leave_one_out_validation(space)
        training = pairs.build_pairs(
            space,
            before=options["before"],
            user_cuts=user_cuts,
            max_pairs=options["max_pairs"],
            max_pairs_per_item=options["max_pairs_per_item"] or None,
            seed=options["seed"],
        )
        cut = f" before {options['before']:%Y-%m-%d %H:%M}" if options["before"] else ""
        if user_cuts is not None:
            cut += f", {len(user_cuts)} users' last engagements held out (validation and test)"
        if not training.pairs:
            raise CommandError(
                f"no training pairs: {training.events} behaviour(s){cut} hold no two items engaged "
                "close together by one user and no search followed by an engagement"
            )
        self.stdout.write(
            f"{len(training)} training pairs ({training.co_engagement} co-engagement, "
            f"{training.search} search) from {training.events} behaviours{cut}"
        )
        if training.over_item_cap:
            self.stdout.write(
                f"{training.over_item_cap} more left out: their items were already in "
                f"{options['max_pairs_per_item']} pairs (--max-pairs-per-item)"
            )
        if held_out is None:
            train, validation = pairs.hold_out(
                training, options["validation_share"], options["seed"]
            )
        else:
            train = training.pairs
            validation = pairs.ValidationPairs.among(
                held_out, training, "the validation split (leave-one-out)"
            )
        if not validation.pairs:
            raise CommandError(f"no validation pairs to check the model on ({validation.source})")
        self.stdout.write(
            f"validation: {len(validation)} held-out pairs from {validation.source}, each "
            f"positive ranked among {len(validation.candidates)} items; training on {len(train)}"
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
                    train,
                    validation,
                    epochs=options["epochs"],
                    patience=options["patience"],
                    batch_size=options["batch_size"],
                    device=device,
                    seed=options["seed"],
                    learning_rate=options["learning_rate"],
                    max_seq_length=length,
                    min_spread_kept=options["min_spread_kept"],
                    force=options["force"],
                    on_step=on_step,
                )
            except pairs.NoTrainingPairs as exc:
                raise CommandError(f"no training pairs: {exc}") from None
            except ImproperlyConfigured as exc:
                raise CommandError(str(exc)) from None
        for epoch, (loss, scores) in enumerate(
            zip(report.epoch_losses, report.validation, strict=True), start=1
        ):
            self.stdout.write(f"epoch {epoch}: mean loss {loss:.4f}; {describe(scores)}")
        stopped = ""
        if report.stopped_early:
            stopped = f"; stopped early, no better validation for {options['patience']} epoch(s)"
        self.stdout.write(
            f"{report.steps} steps over {report.pairs} pairs on {device} in "
            f"{report.seconds:.1f}s; batch loss "
            f"{report.first_loss:.4f} first, {report.last_loss:.4f} last{stopped}"
        )
        self.write_comparison(report)
        if report.output_path is None:
            raise CommandError(
                f"no new space: {report.refusal}; nothing saved (--force creates it anyway)",
                returncode=REFUSED_EXIT,
            )
        if report.refusal:
            self.stdout.write(f"--force: creating it although {report.refusal}")
        self.stdout.write(f"model of epoch {report.best_epoch} saved to {report.output_path}")

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

    def write_comparison(self, report: finetune.FinetuneReport) -> None:
        """Base model against the kept epoch, on the validation pairs."""
        best = report.best
        self.stdout.write(
            f"validation on {report.validation_pairs} pairs: base -> epoch {report.best_epoch}"
        )
        rows = [
            (f"recall@{finetune.RECALL_AT}", report.base.recall_at_10, best.recall_at_10),
            ("MRR", report.base.mrr, best.mrr),
            ("mean cosine", report.base.mean_cosine, best.mean_cosine),
        ]
        for label, before, after in rows:
            self.stdout.write(f"  {label:<12}  {before:.4f} -> {after:.4f} ({after - before:+.4f})")
