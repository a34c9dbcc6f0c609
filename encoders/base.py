"""The encoder protocol every plugin fulfils: texts in, L2-normalised float32 rows out."""

from __future__ import annotations

import abc
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from django.core.exceptions import ImproperlyConfigured

from encoders import textprep

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


class Encoder(abc.ABC):
    """Base class of encoder plugins.

    A plugin sets ``name``, implements ``dim`` and ``_encode_batch`` and, if it takes options
    of its own, consumes them in ``__init__`` before passing the rest on to this class.
    Options common to every plugin:

    ``device``
        ``"cpu"`` (default) or ``"cuda"``/``"cuda:N"`` when torch sees a GPU. Plugins that
        run on numpy ignore it.
    ``max_chars``
        Texts are cut to this many characters before encoding (default 2000).
    ``batch_size``
        How many texts go to ``_encode_batch`` at once (default 64).

    Unknown options raise ``ImproperlyConfigured``, so a typo in settings is not ignored.
    """

    name: ClassVar[str]

    def __init__(
        self,
        *,
        device: str = "cpu",
        max_chars: int = 2000,
        batch_size: int = 64,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise ImproperlyConfigured(
                f"Encoder plugin {self.name!r} got unknown option(s) {sorted(unknown)}."
            )
        self.device = _check_device(device)
        self.max_chars = _positive_int("max_chars", max_chars)
        self.batch_size = _positive_int("batch_size", batch_size)

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Length of every vector this encoder returns."""

    @abc.abstractmethod
    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        """Encode non-empty, normalised texts into an array of shape ``(len(texts), dim)``.

        Rows need not be normalised; ``encode`` does that.
        """

    def space_options(self) -> dict[str, Any]:
        """Plugin options that change the vectors (recorded by ``describe``)."""
        return {}

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Encode ``texts`` into a float32 array of shape ``(len(texts), dim)``.

        Texts are normalised and truncated first (see ``encoders.textprep``). Rows are
        L2-normalised; a text that is empty after normalisation gets a zero row (cosine 0 to
        everything, never NaN) without reaching the model.
        """
        if isinstance(texts, str):
            # Iterating a str would silently encode each character as its own text.
            raise TypeError("encode() takes a sequence of texts, not a single str")
        step = batch_size or self.batch_size
        if step < 1:
            raise ValueError(f"batch_size must be positive, got {step}")
        prepared = [textprep.truncate(textprep.normalize(t), self.max_chars) for t in texts]
        out = np.zeros((len(prepared), self.dim), dtype=np.float32)
        todo = [i for i, text in enumerate(prepared) if text]
        for start in range(0, len(todo), step):
            rows = todo[start : start + step]
            vectors = np.asarray(self._encode_batch([prepared[i] for i in rows]), np.float32)
            if vectors.shape != (len(rows), self.dim):
                raise RuntimeError(
                    f"Encoder plugin {self.name!r} returned shape {vectors.shape} "
                    f"for {len(rows)} texts; expected {(len(rows), self.dim)}."
                )
            out[rows] = vectors
        return l2_normalize(out)

    def describe(self) -> dict[str, Any]:
        """What to store with an encoder space so the same encoder can be rebuilt.

        Runtime options (``device``, ``batch_size``) are left out: they do not change the
        vectors, and a space built on a GPU worker must be usable on a CPU-only one.
        """
        options = {"max_chars": self.max_chars, **self.space_options()}
        return {"plugin": self.name, "dim": self.dim, "options": options}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} dim={self.dim} device={self.device!r}>"


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Scale each row of ``vectors`` to unit length in place; zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.divide(vectors, norms, out=vectors, where=norms > 0)
    return vectors


def _check_device(device: str) -> str:
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise ImproperlyConfigured(
            f"Encoder option device={device!r} is not supported; use 'cpu' or 'cuda'."
        )
    if device != "cpu":
        try:
            import torch
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"device={device!r} needs torch with CUDA; run `pip install torch`."
            ) from exc
        if not torch.cuda.is_available():
            raise ImproperlyConfigured(
                f"device={device!r} was requested but torch sees no CUDA GPU; use 'cpu'."
            )
    return device


def _positive_int(option: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(f"Encoder option {option}={value!r} must be a positive int.")
    return value
