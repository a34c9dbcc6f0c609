"""Text normalisation, segmentation and keywords (jieba for Chinese)."""

import jieba

from encoders import textprep


def test_normalize_folds_full_width_and_collapses_whitespace():
    assert textprep.normalize("  ＡＢＣ１２３\t女装\u200b \n羽绒服\x07 ") == "ABC123 女装 羽绒服"


def test_normalize_of_printable_text_matches_the_per_character_pass():
    import random
    import re
    import unicodedata

    def reference(text: str) -> str:
        text = unicodedata.normalize("NFKC", text)
        text = "".join(
            " " if ch.isspace() else ch
            for ch in text
            if ch.isspace() or not unicodedata.category(ch).startswith("C")
        )
        return re.sub(r"\s+", " ", text).strip()

    pool = "aZ 羽绒服ＡＢ１\t\n\u00a0\u3000\u2028\u200b\x07\ufeff\u00ad,.！é"
    rng = random.Random(0)
    for _ in range(2000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 12)))
        assert textprep.normalize(text) == reference(text), repr(text)


def test_truncate_keeps_short_text_and_cuts_long_text():
    assert textprep.truncate("羽绒服", 10) == "羽绒服"
    assert textprep.truncate("女性长款羽绒服", 4) == "女性长款"
    assert len(textprep.truncate("word " * 100, 50)) <= 50


def test_truncate_backs_off_to_a_word_boundary():
    assert textprep.truncate("warm winter jacket", 14) == "warm winter"


def test_segment_uses_jieba_words_for_chinese():
    assert textprep.segment("女性长款羽绒服") == ["女性", "长款", "羽绒服"]


def test_segment_lowercases_words_and_drops_punctuation_and_stop_words():
    assert textprep.segment("The Women's Down-Jacket, 的 羽绒服!") == [
        "women",
        "down",
        "jacket",
        "羽绒服",
    ]


def test_keywords_handle_mixed_chinese_and_english():
    words = textprep.keywords("Apple iPhone 15 Pro 手机 深空黑色 性价比高的手机", top_k=5)
    assert len(words) == 5
    assert "手机" in words
    assert "iphone" in words


def test_user_dict_adds_words_to_segmentation(tmp_path):
    assert "喵呜款" not in jieba.lcut("喵呜款羽绒服")
    user_dict = tmp_path / "words.txt"
    user_dict.write_text("喵呜款 100 n\n", encoding="utf-8")
    textprep.load_user_dict(user_dict)
    textprep.load_user_dict(user_dict)  # a second call is a no-op
    assert textprep.segment("喵呜款羽绒服") == ["喵呜款", "羽绒服"]
