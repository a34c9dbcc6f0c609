"""``bert``: any local transformers encoder checkpoint (e.g. bert-base-chinese), pooled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from django.core.exceptions import ImproperlyConfigured

from encoders.base import Encoder
from encoders.hf_loading import local_checkpoint_loading

POOLINGS = ("mean", "cls")


class BertEncoder(Encoder):
    """A transformers checkpoint on disk, with mean or CLS pooling of the last hidden layer.

    Options: ``path`` (required: a directory with ``config.json``, the tokenizer files and
    the weights, as written by ``save_pretrained``), ``pooling`` (``"mean"`` or ``"cls"``,
    default ``"mean"``), ``max_length`` (tokens per text, default 256).
    """

    name = "bert"

    def __init__(
        self,
        *,
        path: str | None = None,
        pooling: str = "mean",
        max_length: int = 256,
        **options: Any,
    ) -> None:
        if not path or not Path(path).is_dir():
            raise ImproperlyConfigured(
                f"The bert encoder needs OPTIONS['path'] set to a local transformers checkpoint "
                f"directory (got {path!r}). Models cannot be downloaded from a hub at run time: "
                "copy the checkpoint to disk and point 'path' at it."
            )
        if pooling not in POOLINGS:
            raise ImproperlyConfigured(
                f"bert option pooling={pooling!r} is not one of {', '.join(POOLINGS)}."
            )
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
            raise ImproperlyConfigured(
                f"bert option max_length={max_length!r} must be an int >= 2."
            )
        super().__init__(**options)
        self.path = str(Path(path).resolve())
        self.pooling = pooling
        self.max_length = max_length

        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise ImproperlyConfigured(
                "The bert encoder needs torch and transformers: "
                "run `pip install torch transformers`."
            ) from exc
        self._torch = torch
        # local_files_only: a path that is not a complete checkpoint must fail here, not
        # turn into a hub request that hangs on a machine without internet access.
        with local_checkpoint_loading():
            self._tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            self._model = AutoModel.from_pretrained(self.path, local_files_only=True)
        self._model.to(self.device).eval()

    @property
    def dim(self) -> int:
        return int(self._model.config.hidden_size)

    def space_options(self) -> dict[str, Any]:
        return {"path": self.path, "pooling": self.pooling, "max_length": self.max_length}

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        batch = self._tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        with self._torch.no_grad():
            hidden = self._model(**batch).last_hidden_state
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                # Padding positions must not dilute the mean of short texts in a batch.
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return pooled.float().cpu().numpy()
