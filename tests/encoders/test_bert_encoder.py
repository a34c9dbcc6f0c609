"""The bert plugin on a tiny randomly initialised Chinese/English BERT built in the test."""

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from encoders.bert import BertEncoder

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHINESE = list("女性士长款羽绒服外套保暖机械键盘青轴")
ENGLISH = ["women", "long", "down", "jacket", "mechanical", "keyboard", "warm", "coat"]


def build_checkpoint(path, with_tokenizer_files=True):
    """A BERT checkpoint laid out like bert-base-chinese, but 32-dim and randomly initialised.

    Without tokenizer files the directory holds only vocab.txt, config.json and the
    weights, as bert-base-chinese itself does.
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    (path / "vocab.txt").write_text("\n".join(SPECIAL + CHINESE + ENGLISH) + "\n", encoding="utf-8")
    config = BertConfig(
        vocab_size=len(SPECIAL + CHINESE + ENGLISH),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(path)
    if with_tokenizer_files:
        # from_pretrained reads vocab.txt in transformers 4 and 5 alike; the constructor's
        # vocab_file argument is silently ignored by transformers 5.
        BertTokenizer.from_pretrained(path).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_checkpoint(tmp_path_factory.mktemp("tiny-bert"))


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooling_gives_normalised_vectors_of_hidden_size(checkpoint, pooling):
    encoder = BertEncoder(path=str(checkpoint), pooling=pooling)
    vectors = encoder.encode(["女性长款羽绒服", "women long down jacket", "机械键盘"])
    assert encoder.dim == 32
    assert vectors.shape == (3, 32)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("with_tokenizer_files", [True, False])
def test_different_chinese_texts_differ(tmp_path, with_tokenizer_files):
    path = build_checkpoint(tmp_path, with_tokenizer_files)
    # Equal length on purpose: were CJK not split into in-vocabulary characters, both texts
    # would be [UNK] runs of the same length and get identical vectors.
    a, b = BertEncoder(path=str(path)).encode(["女性长款", "机械键盘"])
    assert a @ b < 0.999


def test_mean_and_cls_pooling_differ(checkpoint):
    mean = BertEncoder(path=str(checkpoint), pooling="mean").encode(["warm coat"])
    cls = BertEncoder(path=str(checkpoint), pooling="cls").encode(["warm coat"])
    assert not np.allclose(mean, cls)


def test_batching_does_not_change_vectors(checkpoint):
    encoder = BertEncoder(path=str(checkpoint))
    texts = ["女性长款羽绒服外套", "coat", "mechanical keyboard 机械键盘"]
    np.testing.assert_allclose(
        encoder.encode(texts, batch_size=3), encoder.encode(texts, batch_size=1), atol=1e-5
    )


def test_describe_records_path_and_pooling(checkpoint):
    described = BertEncoder(path=str(checkpoint), pooling="cls").describe()
    assert described["plugin"] == "bert"
    assert described["dim"] == 32
    assert described["options"]["pooling"] == "cls"
    assert described["options"]["path"] == str(checkpoint.resolve())


def test_missing_path_is_improperly_configured(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="path.*hub"):
        BertEncoder()
    with pytest.raises(ImproperlyConfigured, match="path"):
        BertEncoder(path=str(tmp_path / "no-such-checkpoint"))


def test_unknown_pooling_is_improperly_configured(checkpoint):
    with pytest.raises(ImproperlyConfigured, match="pooling"):
        BertEncoder(path=str(checkpoint), pooling="max")
