"""Fine-tuning a space's torch encoder on the site's own behaviour (transfer learning).

The pretrained model is trained on ``learning.pairs`` with in-batch negatives
(sentence-transformers' ``MultipleNegativesRankingLoss``, batches without a repeated text
from its ``NoDuplicatesBatchSampler``). Retrieval on held-out pairs is measured before
training and after each epoch; the best epoch is kept, training stops when validation
stops improving, and the model is saved only when it retrieves better than the base model
without collapsing the space. A new encoder space points at it, to be built and activated
like any other (blue/green: nothing changes until an operator activates it)."""

from __future__ import annotations

import inspect
import math
import time
from collections import defaultdict
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
from recommender.learning.pairs import NoTrainingPairs, ValidationPairs
from recommender.models import EncoderSpace

LEARNING_RATE = 2e-5


WARMUP_FRACTION = 0.1


MAX_GRAD_NORM = 1.0


# Validation: the positive's rank among the candidates counts as a hit within this many.
RECALL_AT = 10


# Epochs without a better validation before training stops.
PATIENCE = 1


# A fine-tuned epoch that keeps less than this share of the base model's spread (1 - the
# mean pairwise cosine of item vectors) is a collapsing space and is never kept, however it
# retrieves. The measurement that led here: a spread of 0.36 fell to 0.05 in one epoch.
MIN_SPREAD_KEPT = 0.5


# Item vectors sampled for the mean pairwise cosine.
COSINE_SAMPLE = 1000


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


@dataclass(frozen=True)
class RetrievalScores:
    """Retrieval on the validation pairs in one model's space.

    ``recall_at_10``: share of pairs whose positive ranks in the top ``RECALL_AT`` of the
    candidates by cosine to the anchor; ``mrr``: mean reciprocal rank; ``mean_cosine``: mean
    cosine between sampled item vectors, which rises towards 1 as a space collapses.
    """

    recall_at_10: float
    mrr: float
    mean_cosine: float

    def key(self) -> tuple[float, float]:
        """What "better" means: recall@10, then MRR to break ties."""
        return (self.recall_at_10, self.mrr)

    @property
    def spread(self) -> float:
        """1 - ``mean_cosine``: how far apart items are; 0 in a collapsed space."""
        return 1.0 - self.mean_cosine

    def collapsed_from(self, base: RetrievalScores, min_spread_kept: float) -> bool:
        """Whether this space kept less than ``min_spread_kept`` of ``base``'s spread."""
        return self.spread < min_spread_kept * base.spread


@dataclass
class FinetuneReport:
    """What one fine-tuning run did; ``epoch_losses`` are mean batch losses per epoch.

    ``validation`` holds the scores after each epoch trained (early stopping may end
    before ``epochs``); ``best_epoch`` is the one kept (1-based). ``refusal`` says why the
    run is no better than its base, or None; ``output_path`` is None when nothing was saved.
    """

    pairs: int
    steps: int
    epoch_losses: list[float]
    first_loss: float
    last_loss: float
    seconds: float
    output_path: Path | None
    base: RetrievalScores
    validation: list[RetrievalScores]
    best_epoch: int
    validation_pairs: int
    candidates: int
    planned_epochs: int
    refusal: str | None = None
    batch_losses: list[float] = field(default_factory=list, repr=False)

    @property
    def best(self) -> RetrievalScores:
        return self.validation[self.best_epoch - 1]

    @property
    def accepted(self) -> bool:
        return self.refusal is None

    @property
    def stopped_early(self) -> bool:
        return len(self.epoch_losses) < self.planned_epochs


class _PairRows:
    """``pairs`` as the two-column dataset ``NoDuplicatesBatchSampler`` reads (length,
    column names, a row as a dict), without the ``datasets`` package."""

    column_names = ["anchor", "positive"]

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, str]:
        anchor, positive = self.pairs[index]
        return {"anchor": anchor, "positive": positive}


def batches_without_duplicates(
    pairs: Sequence[tuple[str, str]], batch_size: int, *, seed: int = 0, epoch: int = 0
) -> list[list[tuple[str, str]]]:
    """One epoch's batches of ``pairs``, shuffled by ``seed`` and ``epoch``, in which no
    text appears twice: sentence-transformers' ``NoDuplicatesBatchSampler``.

    With in-batch negatives, a text repeated in a batch would be a false negative for the
    other pair it belongs to. Batches of one pair have no negatives and are left out.
    """
    import torch

    try:
        from sentence_transformers.base.sampler import NoDuplicatesBatchSampler
    except ImportError:  # sentence-transformers < 5.4
        from sentence_transformers.sampler import NoDuplicatesBatchSampler

    sampler = NoDuplicatesBatchSampler(
        _PairRows(pairs),
        batch_size=batch_size,
        drop_last=False,
        generator=torch.Generator(),
        seed=seed,
    )
    sampler.set_epoch(epoch)
    return [[pairs[index] for index in batch] for batch in sampler if len(batch) > 1]


def _encode(model, texts: Sequence[str]):
    return model.encode(
        list(texts),
        batch_size=64,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )


def validate(model, validation: ValidationPairs, seed: int = 0) -> RetrievalScores:
    """Rank each validation pair's positive among ``validation.candidates`` by cosine to
    its anchor in ``model``'s space (the anchor itself and its other validation positives
    left out; ties count against the positive, so a collapsed space scores badly).
    """
    import numpy as np

    texts = sorted({*validation.candidates, *(anchor for anchor, _ in validation.pairs)})
    index = {text: position for position, text in enumerate(texts)}
    vectors = _encode(model, texts)
    candidates = np.array([index[text] for text in validation.candidates])
    candidate_vectors = vectors[candidates]
    positives: dict[str, set[int]] = defaultdict(set)
    for anchor, positive in validation.pairs:
        positives[anchor].add(index[positive])
    ranks = []
    for anchor, positive in validation.pairs:
        scores = candidate_vectors @ vectors[index[anchor]]
        target = float(vectors[index[positive]] @ vectors[index[anchor]])
        others = (candidates != index[anchor]) & ~np.isin(candidates, list(positives[anchor]))
        ranks.append(1 + int(np.count_nonzero(scores[others] >= target)))
    ranks_array = np.array(ranks)
    sample = candidate_vectors
    if len(sample) > COSINE_SAMPLE:
        sample = sample[
            np.random.default_rng(seed).choice(len(sample), COSINE_SAMPLE, replace=False)
        ]
    total = sample.sum(axis=0)
    n = len(sample)
    mean_cosine = float((total @ total - n) / (n * (n - 1))) if n > 1 else 1.0
    return RetrievalScores(
        recall_at_10=float(np.mean(ranks_array <= RECALL_AT)),
        mrr=float(np.mean(1.0 / ranks_array)),
        mean_cosine=mean_cosine,
    )


def _default_output_dir(space: EncoderSpace) -> Path:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    path = Path(settings.RECSITE_DATA_DIR) / "models" / f"{space.name}-ft-{stamp}"
    # Never overwrite a model a space may be serving from (two runs in one second).
    n = 1
    while path.exists():
        n += 1
        path = path.with_name(f"{space.name}-ft-{stamp}-{n}")
    return path


def refusal(
    base: RetrievalScores, best: RetrievalScores, min_spread_kept: float = MIN_SPREAD_KEPT
) -> str | None:
    """Why the fine-tuned ``best`` should not replace ``base``, or None when it should."""
    if best.collapsed_from(base, min_spread_kept):
        return (
            f"the space collapses: mean pairwise cosine {base.mean_cosine:.4f} -> "
            f"{best.mean_cosine:.4f}, less than {min_spread_kept:.0%} of the base's spread kept"
        )
    if best.recall_at_10 <= base.recall_at_10:
        return (
            f"validation recall@{RECALL_AT} {best.recall_at_10:.4f} is not better than "
            f"the base model's {base.recall_at_10:.4f}"
        )
    return None


def finetune(
    space: EncoderSpace,
    pairs: Sequence[tuple[str, str]],
    validation: ValidationPairs,
    *,
    epochs: int = 1,
    patience: int = PATIENCE,
    batch_size: int = 32,
    device: str = "cpu",
    seed: int = 0,
    learning_rate: float = LEARNING_RATE,
    max_seq_length: int | None = None,
    min_spread_kept: float = MIN_SPREAD_KEPT,
    force: bool = False,
    output_dir: Path | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
) -> FinetuneReport:
    """Train ``space``'s model on ``pairs`` (anchor, positive); keep the epoch that
    retrieves ``validation`` best and save it to ``output_dir`` if it beats the base model.

    Args:
        pairs: training pairs; none of ``validation``'s should be among them.
        validation: held-out pairs (``pairs.hold_out`` or ``leave_one_out_validation``),
            scored (``validate``) before training and after every epoch.
        patience: stop after this many epochs without a better validation.
        min_spread_kept: an epoch that keeps less than this share of the base's spread
            (1 - mean pairwise cosine) is collapsing and never kept.
        force: save the best epoch even when ``refusal`` finds it no better than the base.
        max_seq_length: truncate the training texts (tokens) to save time; validation and
            the saved model keep the source's own limit.
        on_step: ``on_step(step, total_steps, loss)`` after every optimiser step.

    Loss: ``MultipleNegativesRankingLoss`` (each anchor must pick its positive among all
    positives in its batch), on ``batches_without_duplicates``. AdamW with linear warm-up
    over the first 10% of the planned steps, then linear decay.

    Our own loop, not ``SentenceTransformerTrainer``: the trainer needs ``accelerate`` and
    ``datasets``, which are not in the stack (torch and sentence-transformers are), and a
    loop of a dozen lines keeps the best epoch's weights in memory where the trainer would
    write a checkpoint per epoch.
    """
    import torch
    from sentence_transformers.util import batch_to_device

    try:
        from sentence_transformers.sentence_transformer.losses import (
            MultipleNegativesRankingLoss,
        )
    except ImportError:  # sentence-transformers < 5.4
        from sentence_transformers.losses import MultipleNegativesRankingLoss

    if epochs < 1 or batch_size < 2 or patience < 1:
        raise ValueError("epochs and patience must be >= 1, batch_size >= 2 (in-batch negatives)")
    if learning_rate <= 0 or (max_seq_length is not None and max_seq_length < 2):
        raise ValueError("learning_rate must be > 0 and max_seq_length >= 2")
    if not validation.pairs:
        raise NoTrainingPairs("no validation pairs to check the fine-tuned model on")
    started = time.perf_counter()
    check_device(device)
    torch.manual_seed(seed)
    plan = [
        batches_without_duplicates(pairs, batch_size, seed=seed, epoch=e) for e in range(epochs)
    ]
    if not plan[0]:
        raise NoTrainingPairs(
            f"{len(pairs)} pair(s) cannot make a batch of two with distinct texts"
        )
    total = sum(len(batches) for batches in plan)
    warmup = max(1, math.ceil(WARMUP_FRACTION * total))

    model = load_trainable_model(space, device)
    model.eval()
    base = validate(model, validation, seed)
    serving_length = model.max_seq_length
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
    scores: list[RetrievalScores] = []
    best_epoch, best_state, best_key = 0, None, base.key()
    since_better = 0
    for batches in plan:
        model.train()
        if max_seq_length is not None:
            model.max_seq_length = max_seq_length
        losses = []
        for batch in batches:
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
        scores.append(validate(model, validation, seed))
        collapsing = scores[-1].collapsed_from(base, min_spread_kept)
        if not collapsing and (
            best_state is None or scores[-1].key() > scores[best_epoch - 1].key()
        ):
            best_epoch = len(scores)
            # Kept in memory (on the CPU), to be saved at the end if no later epoch beats it.
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        if not collapsing and scores[-1].key() > best_key:
            best_key, since_better = scores[-1].key(), 0
        else:
            since_better += 1
            if since_better >= patience:
                break

    if best_state is None:
        # Every epoch collapsed: the least bad one is the last; --force saves it.
        best_epoch = len(scores)
    elif best_epoch != len(scores):
        model.load_state_dict(best_state)
    reason = refusal(base, scores[best_epoch - 1], min_spread_kept)

    path = None
    if reason is None or force:
        path = Path(output_dir) if output_dir else _default_output_dir(space)
        path.mkdir(parents=True, exist_ok=True)
        model.save(str(path), create_model_card=False)
    return FinetuneReport(
        pairs=len(pairs),
        steps=len(batch_losses),
        epoch_losses=epoch_losses,
        first_loss=batch_losses[0],
        last_loss=batch_losses[-1],
        seconds=time.perf_counter() - started,
        output_path=path,
        base=base,
        validation=scores,
        best_epoch=best_epoch,
        validation_pairs=len(validation.pairs),
        candidates=len(validation.candidates),
        refusal=reason,
        batch_losses=batch_losses,
        planned_epochs=epochs,
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
