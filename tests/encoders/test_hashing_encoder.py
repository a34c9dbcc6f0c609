"""The built-in hashing encoder: no weights, deterministic, normalised."""

import os
import subprocess
import sys

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from encoders.hashing import HashingEncoder

TEXTS = ["女性长款羽绒服", "women's long down jacket", "机械键盘青轴 mechanical keyboard"]


def test_vectors_are_normalised_with_the_configured_dim():
    vectors = HashingEncoder(dim=64).encode(TEXTS)
    assert vectors.shape == (3, 64)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)


def test_same_text_gives_the_same_vector_in_another_process():
    # A different PYTHONHASHSEED proves the features do not go through Python's hash().
    code = (
        "from encoders.hashing import HashingEncoder\n"
        f"print(HashingEncoder(dim=64).encode({TEXTS!r}).tobytes().hex())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    here = HashingEncoder(dim=64).encode(TEXTS)
    assert bytes.fromhex(result.stdout.strip()) == here.tobytes()


def test_shared_words_make_texts_closer():
    a, b, c = HashingEncoder().encode(["女性长款羽绒服", "儿童长款羽绒服", "机械键盘青轴"])
    assert a @ b > a @ c


def test_invalid_dim_is_improperly_configured():
    with pytest.raises(ImproperlyConfigured, match="dim"):
        HashingEncoder(dim=0)
