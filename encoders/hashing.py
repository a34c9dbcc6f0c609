"""``hashing``: jieba words and character n-grams, signed feature hashing. No weights needed.

Deterministic across processes and machines (blake2b, not Python's salted ``hash()``), so
vectors written by one worker match queries made by another. It captures word overlap, not
meaning: the test workhorse and the fallback when no model is installed.
"""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache
from hashlib import blake2b
from typing import Any

import numpy as np
from django.core.exceptions import ImproperlyConfigured

from encoders import textprep
from encoders.base import Encoder

# Whole words carry most of the signal; sub-word features only bridge spelling variants
# (jacket/jackets) and Chinese compounds that jieba split differently (羽绒服 / 羽绒 外套).
_WORD_WEIGHT = 1.0
_SUBWORD_WEIGHT = 0.5


class HashingEncoder(Encoder):
    """Signed feature hashing of words, character 2-3-grams and Chinese character bigrams.

    Option ``dim`` (default 256): vector length.
    """

    name = "hashing"

    def __init__(self, *, dim: int = 256, **options: Any) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
            raise ImproperlyConfigured(f"hashing option dim={dim!r} must be an int >= 2.")
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
            for feature, weight in features(text).items():
                index, sign = _bucket(feature, self._dim)
                out[row, index] += sign * weight
        return out


def features(text: str) -> dict[str, float]:
    """Weighted features of ``text``: sublinear term frequency times the feature's kind."""
    counts: Counter[tuple[str, float]] = Counter()
    for token in textprep.segment(text):
        counts["w:" + token, _WORD_WEIGHT] += 1
        if textprep.is_han(token):
            grams = [token[i : i + 2] for i in range(len(token) - 1)]
            counts.update(("b:" + g, _SUBWORD_WEIGHT) for g in grams)
        else:
            # Boundary markers make prefixes and suffixes distinct from inner n-grams.
            marked = f"<{token}>"
            grams = [marked[i : i + n] for n in (2, 3) for i in range(len(marked) - n + 1)]
            counts.update(("c:" + g, _SUBWORD_WEIGHT) for g in grams)
    # Sublinear tf: a word repeated ten times is stronger evidence, not ten times stronger.
    return {feature: weight * (1.0 + math.log(n)) for (feature, weight), n in counts.items()}


@lru_cache(maxsize=1 << 16)
def _bucket(feature: str, dim: int) -> tuple[int, float]:
    """Stable (index, sign) of a feature; the sign halves the bias of hash collisions."""
    digest = int.from_bytes(blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")
    return (digest >> 1) % dim, -1.0 if digest & 1 else 1.0
