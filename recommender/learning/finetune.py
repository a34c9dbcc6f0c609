"""Fine-tuning a space's torch encoder on the site's own behaviour (transfer learning).

The pretrained model is trained on ``learning.pairs`` with in-batch negatives
(sentence-transformers' ``MultipleNegativesRankingLoss``) and saved to disk; a new encoder
space points at it, to be built and activated like any other (blue/green: nothing changes
until an operator activates it)."""

from __future__ import annotations

import inspect
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_slug
from django.utils import timezone

from encoders.bert import BertEncoder
from encoders.hf_loading import local_checkpoint_loading
from encoders.registry import plugin_class
from encoders.sentence_transformers import SentenceTransformerEncoder, shipped_model_path
from recommender import spaces
from recommender.learning.pairs import NoTrainingPairs
from recommender.models import EncoderSpace

LEARNING_RATE = 2e-5


WARMUP_FRACTION = 0.1


MAX_GRAD_NORM = 1.0


# Options of the base Encoder class, which mean the same for the fine-tuned model.
COMMON_OPTIONS = ("device", "max_chars", "batch_size")


CREATE_MINILM = "manage.py encoder_space create minilm --plugin sentence-transformers"


class NotFinetunable(ImproperlyConfigured):
    """The space's encoder has no torch weights to train (e.g. USE, hashing)."""


def _defaults(cls: type) -> dict[str, Any]:
    return {
        name: parameter.default
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


def _load_sentence_transformer(options: dict[str, Any], device: str):
    from sentence_transformers import SentenceTransformer

    path = Path(options["model"]) if options.get("model") else shipped_model_path()
    with local_checkpoint_loading():
        return SentenceTransformer(str(path), device=device, local_files_only=True)


def _wrap_bert_checkpoint(options: dict[str, Any], device: str):
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers < 5.4
        from sentence_transformers.models import Pooling, Transformer

    options = {**_defaults(BertEncoder), **options}
    if not options.get("path") or not Path(options["path"]).is_dir():
        raise ImproperlyConfigured(
            f"bert option path={options.get('path')!r} is not a checkpoint directory."
        )
    with local_checkpoint_loading():
        transformer = Transformer(options["path"], max_seq_length=options["max_length"])
        pooling = Pooling(transformer.auto_model.config.hidden_size, options["pooling"])
        return SentenceTransformer(modules=[transformer, pooling], device=device)


# The plugins whose weights can be trained, by encoder class (so aliases and subclasses
# registered under another name count too), each with how to load it as a
# SentenceTransformer: the shape the loss, the training loop and the saved model share.
_TRAINABLE: dict[type, Callable[[dict[str, Any], str], Any]] = {
    SentenceTransformerEncoder: _load_sentence_transformer,
    BertEncoder: _wrap_bert_checkpoint,
}


def _loader(space: EncoderSpace) -> Callable[[dict[str, Any], str], Any]:
    cls = plugin_class(space.plugin)
    for base, loader in _TRAINABLE.items():
        if issubclass(cls, base):
            return loader
    raise NotFinetunable(
        f"space {space.name!r} uses the {space.plugin!r} encoder, which has no torch weights "
        f"to fine-tune (only {', '.join(base.name for base in _TRAINABLE)} spaces can be). "
        f"Create a sentence-transformers space first (`{CREATE_MINILM}`) and fine-tune that."
    )


def check_finetunable(space: EncoderSpace) -> None:
    """Raise ``NotFinetunable``, naming the fix, unless ``space`` has a torch model."""
    _loader(space)


def load_trainable_model(space: EncoderSpace, device: str = "cpu"):
    """``space``'s encoder as a SentenceTransformer on ``device``, ready to train."""
    return _loader(space)(dict(space.options), device)


def check_device(device: str) -> str:
    """``device`` if torch can use it; ``ImproperlyConfigured`` naming the fix otherwise."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ImproperlyConfigured(
            f"device {device!r} was requested but torch sees no CUDA GPU; use --device cpu."
        )
    if device != "cpu" and not device.startswith("cuda"):
        raise ImproperlyConfigured(f"device {device!r} is not supported; use cpu or cuda.")
    return device


@dataclass
class FinetuneReport:
    """What one fine-tuning run did; ``epoch_losses`` are mean batch losses per epoch."""

    pairs: int
    steps: int
    epoch_losses: list[float]
    first_loss: float
    last_loss: float
    seconds: float
    output_path: Path
    batch_losses: list[float] = field(default_factory=list, repr=False)


def batches_without_duplicates(
    pairs: Sequence[tuple[str, str]], batch_size: int
) -> list[list[tuple[str, str]]]:
    """Split ``pairs`` in order into batches in which no text appears twice.

    With in-batch negatives, a text repeated in a batch would be a false negative for the
    other pair it belongs to. Batches of one pair have no negatives and are left out.
    """
    remaining = list(pairs)
    batches = []
    while remaining:
        batch: list[tuple[str, str]] = []
        seen: set[str] = set()
        rest = []
        for pair in remaining:
            if len(batch) < batch_size and pair[0] not in seen and pair[1] not in seen:
                batch.append(pair)
                seen.update(pair)
            else:
                rest.append(pair)
        if len(batch) > 1:
            batches.append(batch)
        remaining = rest
    return batches


def _default_output_dir(space: EncoderSpace) -> Path:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    path = Path(settings.RECSITE_DATA_DIR) / "models" / f"{space.name}-ft-{stamp}"
    # Never overwrite a model a space may be serving from (two runs in one second).
    n = 1
    while path.exists():
        n += 1
        path = path.with_name(f"{space.name}-ft-{stamp}-{n}")
    return path


def finetune(
    space: EncoderSpace,
    pairs: Sequence[tuple[str, str]],
    *,
    epochs: int = 1,
    batch_size: int = 32,
    device: str = "cpu",
    seed: int = 0,
    learning_rate: float = LEARNING_RATE,
    max_seq_length: int | None = None,
    output_dir: Path | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
) -> FinetuneReport:
    """Train ``space``'s model on ``pairs`` (anchor, positive) and save it to ``output_dir``.

    MultipleNegativesRankingLoss: each anchor must pick its positive among all positives in
    its batch. AdamW with linear warm-up over the first 10% of steps, then linear decay.
    ``max_seq_length`` truncates the training texts (tokens) to save time; the saved model
    keeps the source's own limit. ``on_step(step, total_steps, loss)`` is called after
    every optimiser step.
    """
    import torch
    from sentence_transformers.util import batch_to_device

    try:
        from sentence_transformers.sentence_transformer.losses import (
            MultipleNegativesRankingLoss,
        )
    except ImportError:  # sentence-transformers < 5.4
        from sentence_transformers.losses import MultipleNegativesRankingLoss

    if epochs < 1 or batch_size < 2:
        raise ValueError("epochs must be >= 1 and batch_size >= 2 (in-batch negatives)")
    if learning_rate <= 0 or (max_seq_length is not None and max_seq_length < 2):
        raise ValueError("learning_rate must be > 0 and max_seq_length >= 2")
    started = time.perf_counter()
    check_device(device)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    batches = batches_without_duplicates(pairs, batch_size)
    if not batches:
        raise NoTrainingPairs(
            f"{len(pairs)} pair(s) cannot make a batch of two with distinct texts"
        )
    total = epochs * len(batches)
    warmup = max(1, math.ceil(WARMUP_FRACTION * total))

    model = load_trainable_model(space, device)
    serving_length = model.max_seq_length
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    loss_fn = MultipleNegativesRankingLoss(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: (
            (step + 1) / warmup
            if step < warmup
            else max(0.0, (total - step) / max(1, total - warmup))
        ),
    )
    # sentence-transformers 5.x names it preprocess and deprecates tokenize.
    tokenize = getattr(model, "preprocess", None) or model.tokenize

    batch_losses: list[float] = []
    epoch_losses: list[float] = []
    model.train()
    for _ in range(epochs):
        # The same batches every epoch, in a new order: epoch means are then comparable
        # (an in-batch loss depends on the batch's size and make-up).
        order = list(range(len(batches)))
        rng.shuffle(order)
        losses = []
        for index in order:
            batch = batches[index]
            features = [
                batch_to_device(tokenize([pair[0] for pair in batch]), model.device),
                batch_to_device(tokenize([pair[1] for pair in batch]), model.device),
            ]
            loss = loss_fn(features, labels=None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            batch_losses.append(losses[-1])
            if on_step:
                on_step(len(batch_losses), total, losses[-1])
        epoch_losses.append(sum(losses) / len(losses))
    model.eval()
    model.max_seq_length = serving_length

    path = Path(output_dir) if output_dir else _default_output_dir(space)
    path.mkdir(parents=True, exist_ok=True)
    model.save(str(path), create_model_card=False)
    return FinetuneReport(
        pairs=sum(len(batch) for batch in batches),
        steps=total,
        epoch_losses=epoch_losses,
        first_loss=batch_losses[0],
        last_loss=batch_losses[-1],
        seconds=time.perf_counter() - started,
        output_path=path,
        batch_losses=batch_losses,
    )


def next_space_name(source: EncoderSpace) -> str:
    """``{source}-ft-{n}`` with the first ``n`` not yet taken."""
    taken = set(
        EncoderSpace.objects.filter(name__startswith=f"{source.name}-ft-").values_list(
            "name", flat=True
        )
    )
    n = 1
    while f"{source.name}-ft-{n}" in taken:
        n += 1
    return f"{source.name}-ft-{n}"


def check_space_name(name: str) -> str:
    """``ValidationError`` for a name that is not a slug or is taken (before training)."""
    validate_slug(name)
    if len(name) > EncoderSpace._meta.get_field("name").max_length:
        raise ValidationError(f"space name {name!r} is too long")
    if EncoderSpace.objects.filter(name=name).exists():
        raise ValidationError(f"an encoder space named {name!r} already exists")
    return name


def create_finetuned_space(
    source: EncoderSpace, model_path: Path, name: str | None = None
) -> EncoderSpace:
    """A new, inactive ``sentence-transformers`` space on the saved model, with the source's
    text template and its plugin-independent options (device, batch size, max chars)."""
    options = {key: source.options[key] for key in COMMON_OPTIONS if key in source.options}
    options["model"] = str(model_path)
    return spaces.create_space(
        name or next_space_name(source),
        SentenceTransformerEncoder.name,
        options,
        text_template=source.text_template,
    )
