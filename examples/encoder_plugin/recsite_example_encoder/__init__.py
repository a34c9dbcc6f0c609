"""An example third-party encoder plugin: character-frequency vectors.

It shows the whole contract of a plugin: subclass ``encoders.base.Encoder``, set ``name``,
take your own options before passing the rest on, implement ``dim`` and
``_encode_batch``, and declare an entry point in the ``recommender.encoders`` group.
Use it in settings as ``{"PLUGIN": "example-charcount", "OPTIONS": {"dim": 64}}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from django.core.exceptions import ImproperlyConfigured

from encoders.base import Encoder


class CharCountEncoder(Encoder):
    """Counts of each character, folded into ``dim`` buckets by code point (default 64)."""

    name = "example-charcount"

    def __init__(self, *, dim: int = 64, **options: Any) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ImproperlyConfigured(f"example-charcount option dim={dim!r} must be >= 1.")
        self._dim = dim
        super().__init__(**options)

    @property
    def dim(self) -> int:
        return self._dim

    def space_options(self) -> dict[str, Any]:
        return {"dim": self._dim}

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for ch in text.lower():
                if not ch.isspace():
                    out[row, ord(ch) % self._dim] += 1.0
        return out
