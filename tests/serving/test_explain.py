"""Recommendation reasons and blurbs from templates, in Chinese and English (no database)."""

import pytest

from encoders.textprep import keywords
from recommender.serving.explain import (
    ANCHOR_KINDS,
    REASON_KINDS,
    Evidence,
    ItemText,
    Reason,
    blurb,
    display_title,
    explain,
    pick_language,
    shared_keywords,
)

DOWN_JACKET = ItemText(
    title="北岭女士加长款羽绒服",
    category="羽绒服",
    tags=("保暖", "长款"),
    description="冬季加厚连帽羽绒服，白鸭绒填充，防风保暖",
    attributes={
        "title_en": "Women's Long Warm Down Jacket",
        "description_en": "Hooded, windproof winter jacket filled with white duck down.",
        "brand": "北岭",
        "price": 899,
    },
)
PARKA = ItemText(title="经典派克大衣", attributes={"title_en": "Classic Parka"})
BARE_COAT = ItemText(title="高性价比男士夹克外套")
ENGLISH_TITLED = ItemText(
    title="女士长款羽绒服", attributes={"title_en": "Women's Long Warm Down Jacket"}
)
COAT_QUERY = "我最近在找一件外套，性价比高且质量好的"

ANCHORED_KINDS = ("history", "co_occurrence", "similar_item", "positive")
QUERY_KINDS = ("query", "intent")


def evidence_for(kind, anchor_kind="view"):
    """Evidence of ``kind`` with an anchor or a query where that kind has one."""
    if kind in ANCHORED_KINDS:
        return Evidence(kind, anchor=PARKA, anchor_kind=anchor_kind)
    if kind in QUERY_KINDS:
        return Evidence(kind, query=COAT_QUERY)
    return Evidence(kind)


# --- pick_language ---------------------------------------------------------------------


def test_explicit_language_wins_over_accept_language():
    assert pick_language("zh", "en-US,en;q=0.9") == "zh"
    assert pick_language("en-US", "zh-CN") == "en"


@pytest.mark.parametrize("lang", ["zh", "zh-CN", "zh-hans", "zh_TW", "ZH"])
def test_explicit_chinese_forms_give_zh(lang):
    assert pick_language(lang) == "zh"


@pytest.mark.parametrize("lang", ["en", "en-US", "en_GB", "EN"])
def test_explicit_english_forms_give_en(lang):
    assert pick_language(lang) == "en"


def test_accept_language_prefers_highest_q_value():
    assert pick_language(None, "en-US,en;q=0.9,zh;q=0.8") == "en"
    assert pick_language(None, "fr-FR,fr;q=0.9,en;q=0.5,zh;q=0.6") == "zh"


def test_accept_language_chinese_region():
    assert pick_language(None, "zh-CN") == "zh"


def test_accept_language_ignores_languages_with_q_zero():
    assert pick_language(None, "en;q=0,zh;q=0.1") == "zh"


def test_missing_language_defaults_to_chinese():
    assert pick_language(None) == "zh"
    assert pick_language("", "") == "zh"
    assert pick_language(None, "fr-FR,de;q=0.8") == "zh"


def test_unsupported_explicit_language_names_allowed_values():
    with pytest.raises(ValueError, match="'zh', 'en'"):
        pick_language("fr")


# --- display_title ---------------------------------------------------------------------


def test_display_title_uses_english_title_when_present():
    assert display_title(PARKA, "en") == "Classic Parka"
    assert display_title(PARKA, "zh") == "经典派克大衣"


def test_display_title_falls_back_to_title():
    assert display_title(BARE_COAT, "en") == "高性价比男士夹克外套"
    empty_english = ItemText(title="羽绒服", attributes={"title_en": ""})
    assert display_title(empty_english, "en") == "羽绒服"


# --- shared_keywords -------------------------------------------------------------------


def test_shared_keywords_finds_chinese_words_inside_longer_item_words():
    shared = shared_keywords(COAT_QUERY, BARE_COAT)
    assert "外套" in shared
    assert "性价比" in shared  # inside 高性价比
    assert "我" not in shared
    assert "最近" not in shared


def test_shared_keywords_match_english_fields_case_insensitively():
    shared = shared_keywords("women's long down jacket", ENGLISH_TITLED, top_k=4)
    assert {"down", "jacket"} <= set(shared)


def test_shared_keywords_match_plural_to_singular():
    item = ItemText(title="Down Jacket")
    assert shared_keywords("jackets", item) == ["jackets"]


def test_shared_keywords_respects_top_k():
    assert len(shared_keywords("women's long down jacket", ENGLISH_TITLED, top_k=2)) == 2


def test_shared_keywords_is_empty_when_nothing_matches():
    assert shared_keywords("手机壳", BARE_COAT) == []
    assert shared_keywords("", BARE_COAT) == []
    assert shared_keywords(COAT_QUERY, ItemText(title="")) == []


# --- explain ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ANCHORED_KINDS)
def test_anchored_reasons_name_the_anchor(kind):
    assert "《经典派克大衣》" in explain(DOWN_JACKET, evidence_for(kind), "zh").text
    assert '"Classic Parka"' in explain(DOWN_JACKET, evidence_for(kind), "en").text


@pytest.mark.parametrize("kind", QUERY_KINDS)
def test_query_reasons_quote_the_query_and_list_shared_keywords(kind):
    zh = explain(BARE_COAT, evidence_for(kind), "zh")
    en = explain(BARE_COAT, evidence_for(kind), "en")
    assert zh.text.startswith("与你的搜索“我最近在找一件外套")
    assert en.text.startswith('Matches your search "我最近在找一件外套')
    assert set(zh.keywords) == {"外套", "性价比"}
    assert zh.text.endswith("、".join(zh.keywords))
    assert en.keywords == zh.keywords


def test_query_reason_without_shared_keywords_says_close_in_meaning():
    evidence = Evidence("query", query="冬天穿什么")
    assert explain(BARE_COAT, evidence, "zh") == Reason("query", "与你的搜索“冬天穿什么”语义相近")
    assert explain(BARE_COAT, evidence, "en").text == 'Close in meaning to your search "冬天穿什么"'


def test_long_query_is_truncated_to_twenty_characters():
    text = explain(BARE_COAT, Evidence("query", query="外套" * 30), "zh").text
    assert "“" + "外套" * 10 + "…”" in text


def test_english_query_reason_lists_english_keywords():
    reason = explain(DOWN_JACKET, Evidence("query", query="hooded down jacket"), "en")
    assert reason.text.startswith('Matches your search "hooded down jacket": ')
    assert "hooded" in reason.keywords


@pytest.mark.parametrize(
    ("kind", "zh", "en"),
    [
        ("popular", "热门商品", "Popular right now"),
        ("trending", "近期热度上升", "Trending this week"),
        ("new", "新品上架", "New arrival"),
    ],
)
def test_unanchored_reasons_have_fixed_texts(kind, zh, en):
    assert explain(DOWN_JACKET, Evidence(kind), "zh") == Reason(kind, zh)
    assert explain(DOWN_JACKET, Evidence(kind), "en") == Reason(kind, en)


def test_history_verb_follows_the_behaviour_on_the_anchor():
    zh = {k: explain(DOWN_JACKET, evidence_for("history", k), "zh").text for k in ANCHOR_KINDS}
    en = {k: explain(DOWN_JACKET, evidence_for("history", k), "en").text for k in ANCHOR_KINDS}
    assert zh["view"] == "因为你浏览了《经典派克大衣》"
    assert zh["purchase"] == "因为你购买了《经典派克大衣》"
    assert zh["cart"] == "因为你把《经典派克大衣》加入了购物车"
    assert en["view"] == 'Because you viewed "Classic Parka"'
    assert en["cart"] == 'Because you added "Classic Parka" to your cart'
    assert en["purchase"] == 'Because you bought "Classic Parka"'
    assert len(set(zh.values())) == len(ANCHOR_KINDS)
    assert len(set(en.values())) == len(ANCHOR_KINDS)


def test_co_occurrence_reason_without_anchor_is_generic():
    assert explain(DOWN_JACKET, Evidence("co_occurrence"), "zh").text == "同类用户也购买了"
    assert explain(DOWN_JACKET, Evidence("co_occurrence"), "en").text == (
        "Customers like you also bought this"
    )


@pytest.mark.parametrize("kind", ANCHORED_KINDS)
def test_reasons_never_show_empty_brackets(kind):
    untitled = ItemText(title="  ")
    for lang in ("zh", "en"):
        text = explain(DOWN_JACKET, Evidence(kind, anchor=untitled), lang).text
        assert "《》" not in text and '""' not in text and "None" not in text


def test_unknown_evidence_kind_raises():
    with pytest.raises(ValueError, match="unknown reason kind 'magic'"):
        explain(DOWN_JACKET, Evidence("magic"), "zh")


def test_unknown_reason_type_raises_in_blurb():
    with pytest.raises(ValueError, match="unknown reason kind"):
        blurb(DOWN_JACKET, Reason("magic", "?"), "en")


# --- blurb -----------------------------------------------------------------------------


def assert_one_sentence(text, lang):
    limit, end = (80, "。") if lang == "zh" else (160, ".")
    assert text and len(text) <= limit
    assert text.endswith(end)
    if lang == "zh":
        assert "。" not in text[:-1]
    else:
        assert ". " not in text
    assert "None" not in text and "《》" not in text and '""' not in text


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("kind", REASON_KINDS)
def test_blurb_is_one_sentence_within_the_length_limit(kind, lang):
    item = BARE_COAT if kind in QUERY_KINDS else DOWN_JACKET
    text = blurb(item, explain(item, evidence_for(kind), lang), lang)
    assert_one_sentence(text, lang)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_blurb_contains_an_item_keyword(lang):
    text = blurb(DOWN_JACKET, explain(DOWN_JACKET, Evidence("popular"), lang), lang)
    english = "Women's Long Warm Down Jacket Hooded, windproof winter jacket filled with duck down"
    chinese = "北岭女士加长款羽绒服 保暖 长款 冬季加厚连帽羽绒服，白鸭绒填充，防风保暖"
    words = keywords(english if lang == "en" else chinese)
    assert any(word in text.lower() for word in words)


def test_blurb_names_brand_and_price():
    zh = blurb(DOWN_JACKET, explain(DOWN_JACKET, evidence_for("history"), "zh"), "zh")
    assert zh.startswith("这款北岭女士加长款羽绒服")
    assert "¥899" in zh
    assert "和你最近浏览的《经典派克大衣》" in zh
    en = blurb(DOWN_JACKET, explain(DOWN_JACKET, evidence_for("history"), "en"), "en")
    assert "from 北岭" in en and "¥899" in en
    assert '"Classic Parka"' in en and "you viewed recently" in en


def test_blurb_phrase_varies_with_reason_type():
    texts = {
        kind: blurb(DOWN_JACKET, explain(DOWN_JACKET, evidence_for(kind), "zh"), "zh")
        for kind in REASON_KINDS
    }
    assert len(set(texts.values())) == len(REASON_KINDS)


def test_blurb_verb_follows_the_history_behaviour():
    reason = explain(DOWN_JACKET, evidence_for("history", "purchase"), "zh")
    assert "和你最近购买的《经典派克大衣》" in blurb(DOWN_JACKET, reason, "zh")


def test_blurb_for_query_quotes_the_search():
    reason = explain(BARE_COAT, evidence_for("query"), "zh")
    assert reason.keywords
    text = blurb(BARE_COAT, reason, "zh")
    # The search is quoted whole (clipped), never as a list of loose keywords.
    assert "“我最近在找一件外套" in text
    assert "、".join(reason.keywords) not in text


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_blurb_handles_an_item_with_only_a_title(lang):
    text = blurb(BARE_COAT, explain(BARE_COAT, Evidence("history"), lang), lang)
    assert_one_sentence(text, lang)
    assert "高性价比男士夹克外套" in text


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_blurb_shortens_long_titles_to_fit(lang):
    long_item = ItemText(
        title="2024冬季新款北岭女士加长款过膝加厚保暖白鸭绒连帽大毛领羽绒服外套韩版宽松",
        description="防风防水，适合零下二十度",
        attributes={
            "title_en": "2024 Winter New Arrival Beiling Women's Extra Long Knee Length "
            "Thick Warm White Duck Down Hooded Fur Collar Puffer Coat Loose Fit",
            "brand": "A Very Long Brand Name Company Limited",
            "price": "1299.50",
        },
    )
    anchor = ItemText(title=long_item.title, attributes=long_item.attributes)
    reason = explain(long_item, Evidence("history", anchor=anchor, anchor_kind="cart"), lang)
    assert_one_sentence(blurb(long_item, reason, lang), lang)


def test_blurb_skips_missing_brand_and_price():
    item = ItemText(title="羽绒服", attributes={"brand": None, "price": None})
    text = blurb(item, Reason("new", "新品上架"), "zh")
    assert text in ("这款羽绒服，刚刚上架。", "这款羽绒服，新品刚到。")


def test_blurb_is_deterministic():
    reason = explain(DOWN_JACKET, evidence_for("positive"), "en")
    assert blurb(DOWN_JACKET, reason, "en") == blurb(DOWN_JACKET, reason, "en")
