"""Why an item was recommended, and a one-sentence blurb about it, in Chinese or English.

Everything here is template text filled from the item's own words (whole clauses of its
description, brand, price) and from the evidence that retrieved it: no language model, no
database, and the same input always gives the same sentence. ``explain`` turns retrieval
evidence into a ``Reason``; ``blurb`` writes the sentence shown under the item, tied to
that reason.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from encoders.textprep import (
    LRUCache,
    is_han,
    keywords,
    normalize,
    segment,
    text_digest,
    truncate,
)
from recommender.serving import segmentation

__all__ = [
    "ANCHOR_KINDS",
    "LANGUAGES",
    "REASON_KINDS",
    "Evidence",
    "ItemText",
    "Reason",
    "ReasonEvidence",
    "blurb",
    "display_title",
    "explain",
    "pick_language",
    "shared_keywords",
]

LANGUAGES = ("zh", "en")
REASON_KINDS = (
    "history",
    "query",
    "intent",
    "co_occurrence",
    "popular",
    "trending",
    "similar_item",
    "new",
    "positive",
)
ANCHOR_KINDS = ("view", "click", "cart", "purchase", "like", "rating", "review", "share")

# Longest quoted query and anchor title inside a reason; longer ones end in "…".
QUERY_MAX_CHARS = 20
ANCHOR_MAX_CHARS = 30
# A blurb is one sentence of at most this many characters (Chinese characters count as one).
BLURB_MAX_CHARS = {"zh": 80, "en": 160}
# A price is shown only between 1e-15 and 1e16 (powers of ten): anything else is bad data.
PRICE_MAX_EXPONENT = 15


@dataclass(frozen=True)
class ItemText:
    """The text of an item that explanations are written from.

    ``translations`` holds the title and description in other languages,
    ``{"en": {"title": ..., "description": ...}}`` (``Item.translations``).
    ``attributes`` may hold ``category_zh``, ``category_en``, ``price`` and ``brand``, and
    (data not yet moved to ``translations``) ``title_en`` and ``description_en``; other
    short text attributes may give the blurb a feature phrase.
    """

    title: str
    category: str = ""
    tags: tuple[str, ...] = ()
    description: str = ""
    # A dict cannot be hashed; leaving it out of the hash keeps ItemText usable as a key.
    attributes: Mapping[str, Any] = field(default_factory=dict, hash=False)
    translations: Mapping[str, Mapping[str, str]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Callers often pass a list of tags; a tuple keeps the instance hashable.
        if not isinstance(self.tags, tuple):
            object.__setattr__(self, "tags", tuple(self.tags))


@dataclass(frozen=True)
class Evidence:
    """Why a candidate was retrieved: the strongest source that put it in the list.

    ``anchor`` is the item the reason names (history, co_occurrence, similar_item,
    positive) and ``anchor_id`` its external id; ``query`` the search or intent text.
    ``anchor_kind`` is the behaviour on the anchor: the user's own for history and
    positive reasons; for co_occurrence the other shoppers' behaviour behind the count
    (``None`` or ``"mixed"``: several kinds), and ``item_kind`` theirs on the recommended
    item. ``similarity`` is the item's cosine to the anchor, ``cooccurrence`` the number
    of shoppers behind the co-occurrence. ``category``: a "popular in a category you
    like" reason (kind ``popular``) names the item's category.
    """

    kind: str
    anchor: ItemText | None = None
    anchor_kind: str | None = None
    query: str | None = None
    anchor_id: str | None = None
    similarity: float | None = None
    cooccurrence: int | None = None
    item_kind: str | None = None
    category: bool = False


@dataclass(frozen=True)
class ReasonEvidence:
    """What a reason that names an anchor rests on, as the API shows it: the anchor's
    external id, the item's similarity to it and the number of shoppers behind a
    co-occurrence (``None`` where it does not apply)."""

    anchor: str | None = None
    similarity: float | None = None
    cooccurrence: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "anchor": self.anchor,
            "similarity": None if self.similarity is None else round(float(self.similarity), 4),
            "cooccurrence": None if self.cooccurrence is None else int(self.cooccurrence),
        }


@dataclass(frozen=True)
class Reason:
    """The reason shown with a recommendation; ``type`` is the evidence kind.

    ``keywords`` are the query words the item shares (query and intent reasons only);
    ``evidence`` is set whenever the text names an anchor item.
    """

    type: str
    text: str
    keywords: tuple[str, ...] = ()
    evidence: ReasonEvidence = field(default_factory=ReasonEvidence)


# --- language -------------------------------------------------------------------------

_Q_VALUE = re.compile(r"^q=([0-9.]+)$", re.IGNORECASE)


def _language_of(tag: str) -> str | None:
    """``"zh"``/``"en"`` for a language tag such as ``zh-Hans`` or ``en_US``, else None."""
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in LANGUAGES else None


def pick_language(lang: str | None, accept_language: str | None = None) -> str:
    """The reply language, ``"zh"`` or ``"en"``.

    An explicit ``lang`` (``"zh"``, ``"zh-CN"``, ``"en-US"`` ...) wins; otherwise the
    ``Accept-Language`` header decides by q-value; with neither the answer is ``"zh"``.
    An explicit value in another language raises ``ValueError``.
    """
    if lang is not None and lang.strip():
        chosen = _language_of(lang)
        if chosen is None:
            raise ValueError(
                f"unsupported language {lang!r}: use one of {', '.join(map(repr, LANGUAGES))}"
                " (regional forms such as 'zh-CN' or 'en-US' are accepted)"
            )
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for position, entry in enumerate((accept_language or "").split(",")):
        tag, *params = (part.strip() for part in entry.split(";"))
        language = _language_of(tag) if tag else None
        if language is None:
            continue
        quality = 1.0
        for param in params:
            match = _Q_VALUE.match(param)
            if match:
                try:
                    quality = float(match.group(1))
                except ValueError:
                    quality = 0.0  # a malformed q-value is treated as "not acceptable"
        if quality > 0:
            ranked.append((-quality, position, language))
    return min(ranked)[2] if ranked else "zh"


def display_title(item: ItemText, lang: str) -> str:
    """The item's title in ``lang``: ``translations[lang]["title"]``, then the attribute
    ``title_<lang>`` (``title_en``: data not yet moved to translations), then ``title``."""
    return _text_in(item, pick_language(lang), "title") or normalize(item.title)


def _text_in(item: ItemText, lang: str, key: str) -> str:
    """The item's ``key`` ("title", "description") in ``lang`` from ``translations`` or the
    older ``<key>_<lang>`` attribute, normalised; ``""`` when it has none (the main text
    is the caller's fallback)."""
    translations = item.translations or {}
    texts = translations.get(lang) if isinstance(translations, Mapping) else None
    value = texts.get(key) if isinstance(texts, Mapping) else None
    if isinstance(value, str) and value.strip():
        return normalize(value)
    return _attribute(item, f"{key}_{lang}")


# --- keywords -------------------------------------------------------------------------


def _attribute(item: ItemText, key: str) -> str:
    """A text attribute, normalised; ``""`` when it is missing, empty or not text-like."""
    value = (item.attributes or {}).get(key)
    if value is None or isinstance(value, bool | Mapping | list | tuple | set):
        return ""
    return normalize(str(value))


def _bounded(text: str) -> str:
    """The part of a description that reasons and blurbs read (its start)."""
    return text[: segmentation.DESCRIPTION_CHARS]


def _joined(parts: list[str]) -> str:
    """Text parts as one text, cut to what segmentation reads."""
    return " ".join(p for p in parts if p)[: segmentation.TEXT_CHARS]


def _item_text(item: ItemText) -> str:
    """All of the item's words a query can match: main fields and the translated ones."""
    parts = [
        item.title,
        item.category,
        *item.tags[: segmentation.MAX_TAGS],
        _bounded(item.description),
    ]
    parts += [_text_in(item, "en", "title"), _attribute(item, "category_en")]
    parts += [_attribute(item, "category_zh"), _bounded(_text_in(item, "en", "description"))]
    return normalize(_joined(parts))


def _singular(word: str) -> str:
    """A rough English singular, so "jackets" in a query finds "jacket" in an item."""
    if len(word) <= 3 or is_han(word) or not word.isalpha() or word.endswith("ss"):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    return word[:-1] if word.endswith("s") else word


def shared_keywords(query: str, item: ItemText, top_k: int = 3) -> list[str]:
    """Keywords of ``query`` that also occur in the item's text, most important first.

    English words match case-insensitively (and singular matches plural); a Chinese word
    of two or more characters also matches inside a longer item word or around a shorter
    one (外套 matches 夹克外套). Returns ``[]`` when nothing is shared.
    """
    query = normalize(query or "")
    if not query or top_k <= 0:
        return []
    text = _item_text(item).lower()
    if not text:
        return []
    # The item's words come from a cache keyed by a hash of its (bounded) text.
    tokens = {_singular(t) for t in segmentation.item_tokens(text)}
    han_tokens = [t for t in tokens if is_han(t) and len(t) >= 2]
    candidates = _query_words(query)
    shared: list[str] = []
    for word in candidates:
        if _singular(word) in tokens:
            shared.append(word)
        elif is_han(word) and len(word) >= 2:
            if word in text or any(token in word for token in han_tokens):
                shared.append(word)
        if len(shared) == top_k:
            break
    return shared


# A request explains every listed item against the same query: its words once per query.
_query_words_cache = LRUCache(1024)


def _query_words(query: str) -> tuple[str, ...]:
    """A query's words in the order shared keywords are picked from: TF-IDF order first;
    plain segmentation after it catches the words TF-IDF drops (single characters, words
    it has no weight for)."""
    key = text_digest(query)
    words = _query_words_cache.get(key)
    if words is None:
        words = tuple(dict.fromkeys([*keywords(query, top_k=32), *segment(query)]))
        _query_words_cache.put(key, words)
    return words


# --- reasons --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Action:
    """How one behaviour on the anchor reads in a reason and inside a blurb."""

    reason_zh: str
    reason_en: str
    blurb_zh: str  # "和你最近{verb}的《X》..."
    blurb_en: str  # "... "X" you {verb} recently"


_ACTIONS: dict[str, _Action] = {
    "view": _Action("因为你浏览了《{anchor}》", 'Because you viewed "{anchor}"', "浏览", "viewed"),
    "click": _Action(
        "因为你看过《{anchor}》", 'Because you looked at "{anchor}"', "看过", "looked at"
    ),
    "cart": _Action(
        "因为你把《{anchor}》加入了购物车",
        'Because you added "{anchor}" to your cart',
        "加入购物车",
        "added to your cart",
    ),
    "purchase": _Action(
        "因为你购买了《{anchor}》", 'Because you bought "{anchor}"', "购买", "bought"
    ),
    "like": _Action("因为你喜欢《{anchor}》", 'Because you liked "{anchor}"', "喜欢", "liked"),
    "review": _Action(
        "因为你评价了《{anchor}》", 'Because you reviewed "{anchor}"', "评价", "reviewed"
    ),
    "share": _Action("因为你分享了《{anchor}》", 'Because you shared "{anchor}"', "分享", "shared"),
    "rating": _Action(
        "因为你给《{anchor}》评了分", 'Because you rated "{anchor}"', "评过分", "rated"
    ),
}
# A missing or new behaviour kind reads as a plain "looked at" rather than failing a page.
_DEFAULT_ACTION = "click"


@dataclass(frozen=True)
class _Others:
    """What other shoppers did, in a co-occurrence reason: "{on anchor}的人也{on item}" and
    "Shoppers who {on anchor} also {on item}"."""

    anchor_zh: str
    item_zh: str
    anchor_en: str
    item_en: str


# By the other shoppers' behaviour behind the co-occurrence count (``serving.cooccurrence``
# counts every engaged kind together): "mixed" where their behaviours differ.
_OTHERS: dict[str, _Others] = {
    "view": _Others("看过《{anchor}》", "看了", 'viewed "{anchor}"', "viewed this"),
    "click": _Others("看过《{anchor}》", "看了", 'viewed "{anchor}"', "viewed this"),
    "cart": _Others(
        "把《{anchor}》加入购物车",
        "加购了它",
        'added "{anchor}" to their cart',
        "added this to their cart",
    ),
    "purchase": _Others("买了《{anchor}》", "买了", 'bought "{anchor}"', "bought this"),
    "like": _Others("喜欢《{anchor}》", "喜欢它", 'liked "{anchor}"', "liked this"),
    "rating": _Others(
        "给《{anchor}》打了高分",
        "给它打了高分",
        'rated "{anchor}" highly',
        "rated this highly",
    ),
    "review": _Others("评价了《{anchor}》", "评价了它", 'reviewed "{anchor}"', "reviewed this"),
    "share": _Others("分享了《{anchor}》", "分享了它", 'shared "{anchor}"', "shared this"),
    "mixed": _Others("选了《{anchor}》", "选了", 'chose "{anchor}"', "chose this"),
}
_OTHERS_TEMPLATE = {
    "zh": "{on_anchor}的人也{on_item}",
    "en": "Shoppers who {on_anchor} also {on_item}",
}


def _others_template(anchor_kind: str | None, item_kind: str | None, lang: str) -> str:
    """The co-occurrence reason's template for what the other shoppers did."""
    on_anchor = _OTHERS.get(anchor_kind or "mixed", _OTHERS["mixed"])
    on_item = _OTHERS.get(item_kind or anchor_kind or "mixed", _OTHERS["mixed"])
    zh = lang == "zh"
    return _OTHERS_TEMPLATE[lang].format(
        on_anchor=on_anchor.anchor_zh if zh else on_anchor.anchor_en,
        on_item=on_item.item_zh if zh else on_item.item_en,
    )


# Reason texts by kind: (with an anchor or query, without one).
_REASONS: dict[str, dict[str, tuple[str, str]]] = {
    "zh": {
        "history": ("", "根据你最近看过的商品"),  # anchored text comes from _ACTIONS
        "query": ("与你的搜索“{query}”相关：{keywords}", "与你的搜索相关"),
        "intent": ("与你的搜索“{query}”相关：{keywords}", "与你的搜索相关"),
        "co_occurrence": ("", "同类用户也购买了"),  # anchored text comes from _OTHERS
        "popular": ("你常逛的“{category}”类中的热门商品", "热门商品"),
        "trending": ("近期热度上升", "近期热度上升"),
        "new": ("新品上架", "新品上架"),
        "similar_item": ("与《{anchor}》相似", "与你看过的商品相似"),
        "positive": ("与你喜欢的《{anchor}》相似", "与你喜欢的商品相似"),
    },
    "en": {
        "history": ("", "Based on items you looked at recently"),
        "query": ('Matches your search "{query}": {keywords}', "Matches your search"),
        "intent": ('Matches your search "{query}": {keywords}', "Matches your search"),
        "co_occurrence": ("", "Customers like you also bought this"),
        "popular": ('Popular in "{category}", a category you like', "Popular right now"),
        "trending": ("Trending this week", "Trending this week"),
        "new": ("New arrival", "New arrival"),
        "similar_item": ('Similar to "{anchor}"', "Similar to items you looked at"),
        "positive": ('Similar to "{anchor}" that you liked', "Similar to items you liked"),
    },
}
# A query sharing no keyword with the item was still retrieved by meaning.
_QUERY_BY_MEANING = {
    "zh": "与你的搜索“{query}”语义相近",
    "en": 'Close in meaning to your search "{query}"',
}
_LIST_SEPARATOR = {"zh": "、", "en": ", "}


def _clip(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` characters, with "…" when something was cut."""
    text = normalize(text)
    return text if len(text) <= max_chars else truncate(text, max_chars) + "…"


def _check_kind(kind: str) -> None:
    if kind not in REASON_KINDS:
        raise ValueError(
            f"unknown reason kind {kind!r}: use one of {', '.join(map(repr, REASON_KINDS))}"
        )


def explain(item: ItemText, evidence: Evidence, lang: str) -> Reason:
    """The reason shown with ``item``, written from the evidence that retrieved it.

    Raises ``ValueError`` for an unknown evidence kind or language.
    """
    _check_kind(evidence.kind)
    lang = pick_language(lang)
    kind = evidence.kind
    anchored, plain = _REASONS[lang][kind]
    if kind in ("query", "intent"):
        query = normalize(evidence.query or "")
        if not query:
            return Reason(kind, plain)
        shared = tuple(shared_keywords(query, item))
        quoted = _clip(query, QUERY_MAX_CHARS)
        if not shared:
            return Reason(kind, _QUERY_BY_MEANING[lang].format(query=quoted))
        listed = _LIST_SEPARATOR[lang].join(shared)
        return Reason(kind, anchored.format(query=quoted, keywords=listed), shared)
    if kind == "popular":
        category = _category_name(item, lang) if evidence.category else ""
        return Reason(kind, anchored.format(category=category) if category else plain)
    if kind == "history":
        action = _ACTIONS.get(evidence.anchor_kind or "", _ACTIONS[_DEFAULT_ACTION])
        anchored = action.reason_zh if lang == "zh" else action.reason_en
    elif kind == "co_occurrence":
        anchored = _others_template(evidence.anchor_kind, evidence.item_kind, lang)
    anchor = display_title(evidence.anchor, lang) if evidence.anchor else ""
    if not anchor or "{anchor}" not in anchored:
        # No title to name (or a kind that names none): the generic text, never "《》".
        return Reason(kind, plain)
    proof = ReasonEvidence(evidence.anchor_id, evidence.similarity, evidence.cooccurrence)
    return Reason(kind, anchored.format(anchor=_clip(anchor, ANCHOR_MAX_CHARS)), evidence=proof)


def _category_name(item: ItemText, lang: str) -> str:
    """The item's category in ``lang`` ("" when it has none in that script)."""
    if lang == "zh":
        return _clip(_attribute(item, "category_zh") or item.category, ANCHOR_MAX_CHARS)
    english = _attribute(item, "category_en") or normalize(item.category)
    return "" if any(is_han(ch) for ch in english) else _clip(english, ANCHOR_MAX_CHARS)


def _template_pattern(template: str) -> re.Pattern[str]:
    """A regex that reads the placeholders back out of a filled-in reason template."""
    pattern = re.escape(template)
    for name in ("anchor", "query", "keywords", "category"):
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>.+)")
    return re.compile(pattern)


# Every anchored or quoted reason text, as (kind, anchor_kind, pattern): blurb takes only a
# Reason, so it reads the anchor title and behaviour back from the text explain wrote.
_REASON_PATTERNS: list[tuple[str, str | None, re.Pattern[str]]] = (
    [
        (kind, None, _template_pattern(template))
        for lang in LANGUAGES
        for kind, (template, _) in _REASONS[lang].items()
        if "{" in template
    ]
    + [("query", None, _template_pattern(template)) for template in _QUERY_BY_MEANING.values()]
    + [("intent", None, _template_pattern(template)) for template in _QUERY_BY_MEANING.values()]
    + [
        ("history", anchor_kind, _template_pattern(template))
        for anchor_kind, action in _ACTIONS.items()
        for template in (action.reason_zh, action.reason_en)
    ]
    + [
        ("co_occurrence", anchor_kind, _template_pattern(_others_template(anchor_kind, on, lang)))
        for anchor_kind in _OTHERS
        for on in _OTHERS
        for lang in LANGUAGES
    ]
)


def _read_reason(reason: Reason) -> tuple[str, str, str]:
    """(anchor title, anchor kind, query) recovered from a reason's text; ``""`` if absent."""
    for kind, anchor_kind, pattern in _REASON_PATTERNS:
        if kind != reason.type:
            continue
        match = pattern.fullmatch(reason.text)
        if match:
            found = match.groupdict()
            return found.get("anchor") or "", anchor_kind or "", found.get("query") or ""
    return "", "", ""


# --- blurbs ---------------------------------------------------------------------------

# The closing phrase of a blurb by reason kind: (phrases with an anchor or a search text,
# phrases without one). A kind has several of each; ``_pick`` chooses one per item, so a
# list does not read the same sentence twice. Query and intent phrases quote the search.
_PHRASES: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "zh": {
        "history": (
            ("和你最近{verb}的《{anchor}》风格相近", "和你最近{verb}的《{anchor}》是同一路风格"),
            ("和你最近看过的商品风格相近", "延续了你最近的浏览口味"),
        ),
        "query": (("正合你搜索的“{query}”", "和你搜索的“{query}”正好对上"), ("和你的搜索相关",)),
        "intent": (("符合你想要的“{query}”", "贴合你说的“{query}”"), ("贴近你描述的需求",)),
        "co_occurrence": (
            ("常和《{anchor}》被同一批人选中", "和《{anchor}》常被同一批顾客看中"),
            ("和你口味相近的顾客也常选它", "同类顾客也常选它"),
        ),
        "popular": ((), ("最近很多人在买", "近期人气很高", "是最近的热门之选")),
        "trending": ((), ("这周热度一路上升", "这几天关注度涨得很快")),
        "new": ((), ("刚刚上架", "新品刚到")),
        "similar_item": (
            ("和《{anchor}》同属一类，可以对比看看", "可以和《{anchor}》放在一起比比看"),
            ("和你看过的商品相似", "和你看过的商品是同类"),
        ),
        "positive": (
            ("和你喜欢的《{anchor}》一样值得一看", "喜欢《{anchor}》的话，它也值得一看"),
            ("和你喜欢的商品一样值得一看", "和你喜欢的商品是一个路子"),
        ),
    },
    "en": {
        "history": (
            (
                'in the style of "{anchor}" you {verb} recently',
                'a good match for "{anchor}", which you {verb} recently',
            ),
            ("in the style of what you looked at recently", "in line with your recent browsing"),
        ),
        "query": (
            ('a match for your search "{query}"', 'right for your search "{query}"'),
            ("related to your search",),
        ),
        "intent": (
            ('a fit for what you asked for: "{query}"', 'in line with your "{query}"'),
            ("close to what you described",),
        ),
        "co_occurrence": (
            (
                'often chosen by the same shoppers as "{anchor}"',
                'a frequent pick of shoppers who chose "{anchor}"',
            ),
            ("a favourite of shoppers like you", "popular with shoppers like you"),
        ),
        "popular": (
            (),
            (
                "one of the most popular picks right now",
                "a crowd favourite at the moment",
                "much in demand right now",
            ),
        ),
        "trending": ((), ("climbing fast this week", "gaining fans quickly this week")),
        "new": ((), ("just arrived", "new in the shop")),
        "similar_item": (
            ('a close alternative to "{anchor}"', 'worth comparing with "{anchor}"'),
            ("close to items you looked at", "much like items you looked at"),
        ),
        "positive": (
            ('in the same vein as "{anchor}" that you liked', 'for fans of "{anchor}", like you'),
            ("in the same vein as items you liked",),
        ),
    },
}
# A query or intent reason without shared words: the item was found by meaning.
_MEANING_PHRASES = {
    "zh": {"query": ("和你搜索的“{query}”意思相近",), "intent": ("贴近你描述的“{query}”",)},
    "en": {
        "query": ('close to your search "{query}"',),
        "intent": ('close to what you described: "{query}"',),
    },
}
# Sentence frames per language (see _sentence); one is picked per item.
_FRAMES = 3

# Feature phrases: whole clauses of the description (or short text attributes), never
# loose words. A phrase has (min, max) characters and, in English, at most so many words.
_PHRASE_CHARS = {"zh": (3, 16), "en": (12, 64)}
_PHRASE_MAX_WORDS = 10
_MAX_FEATURES = 2
_MAX_CANDIDATES = 4
# Attributes that are not feature phrases (the price and brand have their own place).
_NOT_FEATURES = ("price", "brand", "title", "description", "category")
_MAX_ATTRIBUTES = 20
# Clause boundaries: sentence and clause punctuation (normalize() has folded "，：；" to
# ",:;"). "、" joins list items inside a clause, so a Chinese clause keeps it; an English
# sentence is split at commas only when every piece is itself a clause (see _en_clauses).
_ZH_CLAUSES = re.compile(r"[。！？!?；;，,：:\n]+")
_EN_SENTENCES = re.compile(r"(?<=[.!?])\s+|[;:\n]+|\s[—–]\s|—|[()]")
_LEADING_CONNECTIVES = {
    "zh": re.compile(r"^(?:并且|而且|同时|另外|此外|以及)"),
    "en": re.compile(r"^(?:and|also|plus|but)\s+", re.IGNORECASE),
}
# A clause that starts by pointing elsewhere ("It copes with...", "它...") reads as a
# fragment out of context; shop boilerplate (returns, stock, shipping) says nothing of
# the item.
_POINTING = {
    "zh": re.compile(r"^(?:它|它们|我们|我|您|你|亲|本店|本品|该款)"),
    "en": re.compile(
        r"^(?:it|its|it's|they|their|them|this|these|those|that|we|our|you|your|he|she|his|"
        r"her|which)\b",
        re.IGNORECASE,
    ),
}
_BOILERPLATE = {
    "zh": re.compile(
        r"正品|保障|退换|无理由|包邮|发货|库存|现货|客服|售后|质保|保修|直供|下单|尺码|"
        r"咨询|店铺|运费|快递|物流|假一赔|授权|官方|请"
    ),
    "en": re.compile(
        r"\b(?:genuine|guarantee[ds]?|returns?|refunds?|stock|shipping|ships|delivery|"
        r"dispatch(?:ed)?|warranty|supplied|order|true to size|customer service|seller|store|"
        r"official(?:ly)?|authori[sz]ed|please)\b",
        re.IGNORECASE,
    ),
}
# A clause must not end on a negation with nothing after it (bad data, or a cut).
_DANGLING_NEGATION = {
    "zh": re.compile(r"(?:不|无|免|防|非|没|别)$"),
    "en": re.compile(
        r"\b(?:no|not|non-?|without|never)(?:$|\s+(?:and|or|but)\b)|\bnon-$", re.IGNORECASE
    ),
}
_HAN_CHAR = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CJK_CHAR = re.compile(
    "[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\uff00-\uffef]"
)
_LATIN_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9+\-./&'’]*")


def _price(item: ItemText) -> str:
    """The price as shown (``¥899``, ``¥89.90``, or a string as given); ``""`` if none."""
    value = (item.attributes or {}).get("price")
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, str):
        value = normalize(value)
        try:
            number = Decimal(value)
        except InvalidOperation:
            return value  # already formatted, with its own currency ("899元", "$19.99")
    elif isinstance(value, int | float | Decimal):
        number = Decimal(str(value))
    else:
        return ""
    # A stored "1e5000" must not reach int(): the digits cost time quadratic in the
    # exponent (1e999999999 never finishes) and Python refuses to print over 4,300 of them.
    if not number.is_finite() or number <= 0 or abs(number.adjusted()) > PRICE_MAX_EXPONENT:
        return ""
    if number == number.to_integral_value():
        return f"¥{int(number)}"
    return f"¥{number:.2f}"


def _pick(options: tuple[str, ...] | list[str], item: ItemText, salt: str) -> str:
    """One of ``options``, the same every time for the same item (a hash of its title)."""
    key = f"{salt}\x1f{item.title}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return options[int.from_bytes(digest, "big") % len(options)]


def _model_like(token: str) -> bool:
    """``USB-C``, ``iPhone``, ``SPF50``, ``IPS``: a model number or an acronym, which a
    Chinese text may write in Latin letters; a plain word ("jacket") is not."""
    letters = [ch for ch in token if ch.isalpha()]
    return (
        any(ch.isdigit() for ch in token)
        or (len(letters) >= 2 and all(ch.isupper() for ch in letters))
        or any(ch.isupper() for ch in token[1:])
    )


def _pure(phrase: str, lang: str, brand: str) -> bool:
    """Whether ``phrase`` is written in ``lang``'s script (brand and model names aside)."""
    brand_words = {w.lower() for w in _LATIN_TOKEN.findall(brand)}
    if lang == "zh":
        if not _HAN_CHAR.search(phrase):
            return False
        return all(
            _model_like(t) or t.lower() in brand_words
            for t in (m.rstrip(".-/'’") for m in _LATIN_TOKEN.findall(phrase))
        )
    return not _CJK_CHAR.search(phrase.replace(brand, "") if brand else phrase)


# A comma before one of these words ends a clause ("Filled to lock in heat, so ...");
# other commas separate adjectives or list items ("for dry, cracked hands").
_EN_CLAUSE_STARTS = re.compile(
    r"\s*(?:and|but|so|which|while|making|keeping|giving|letting|plus|it|they)\b",
    re.IGNORECASE,
)


def _en_clauses(sentence: str) -> list[str]:
    """An English sentence as clauses: split at the commas that end a clause (the next
    word starts a new one), never inside a list ("a light, easy feel" stays whole)."""
    clauses = [""]
    for piece in sentence.split(","):
        if clauses[-1] and not _EN_CLAUSE_STARTS.match(piece):
            clauses[-1] += "," + piece
        else:
            clauses.append(piece)
    return [c.strip() for c in clauses if c.strip()]


def _clauses(text: str, lang: str) -> list[str]:
    """The description's clauses, in order, trimmed of punctuation and connectives."""
    if lang == "zh":
        pieces = _ZH_CLAUSES.split(text)
    else:
        pieces = [c for s in _EN_SENTENCES.split(text) if s for c in _en_clauses(s)]
    clauses = []
    for piece in pieces:
        piece = piece.strip(" \t.,;:!?。、…-—–\"'“”‘’")
        piece = _LEADING_CONNECTIVES[lang].sub("", piece).strip()
        if piece:
            clauses.append(piece)
    return clauses


def _usable(phrase: str, lang: str, said: str, brand: str) -> bool:
    """Whether a clause can be a feature phrase: of a phrase's length, in the language's
    script, saying something the title does not, negations whole, not shop boilerplate."""
    low, high = _PHRASE_CHARS[lang]
    if not low <= len(phrase) <= high or phrase.lower() in said:
        return False
    if lang == "en":
        words = phrase.split()
        if len(words) < 2 or len(words) > _PHRASE_MAX_WORDS:
            return False
        # A list of single words ("Adventure, Animation, Comedy") is keyword debris.
        if sum(len(p.split()) == 1 for p in phrase.split(",")) >= 2:
            return False
    if phrase.count("(") != phrase.count(")") or phrase.count("“") != phrase.count("”"):
        return False
    return not (
        _POINTING[lang].search(phrase)
        or _BOILERPLATE[lang].search(phrase)
        or _DANGLING_NEGATION[lang].search(phrase)
        or not _pure(phrase, lang, brand)
    )


def _attribute_phrases(item: ItemText, lang: str) -> list[str]:
    """Short text attributes in ``lang`` ("material": "100%纯棉") as feature phrases."""
    attributes = item.attributes or {}
    phrases = []
    for key in list(attributes)[:_MAX_ATTRIBUTES]:
        base, _, suffix = str(key).rpartition("_")
        if suffix in LANGUAGES:
            if suffix != lang:
                continue
        else:
            base = str(key)
        if base.lower() in _NOT_FEATURES:
            continue
        value = _attribute(item, str(key))
        if value and (lang == "en" or len(_HAN_CHAR.findall(value)) >= 2):
            phrases.append(value)
    return phrases


def _lower_first(phrase: str) -> str:
    """A phrase's first word in lower case mid-sentence ("Filled" → "filled"), unless
    it is written in capitals or mixed case ("USB-C", "iPhone")."""
    first = phrase.split(" ", 1)[0]
    if first == "A" or (len(first) > 1 and first[0].isupper() and first[1:].islower()):
        return phrase[0].lower() + phrase[1:]
    return phrase


# An item's feature phrases depend on its own text only, and choosing them (segmenting the
# description, scoring its clauses) costs about a millisecond an item: each process keeps
# the phrases of the items it served lately. ItemText's hash leaves out its dicts, its
# equality does not, so an edited attribute is a different key.
@functools.lru_cache(maxsize=4096)
def _features(item: ItemText, lang: str, title: str, brand: str) -> tuple[tuple[int, str], ...]:
    return tuple(_choose_features(item, lang, title, brand))


_KEYWORDS = 12  # the description's keywords that weigh its clauses


def _feature_texts(item: ItemText, lang: str, title: str, brand: str) -> tuple[str, str, str]:
    """What choosing an item's feature phrases segments: its description (bounded), what its
    title and brand already say, and the two together."""
    description = _bounded(_text_in(item, lang, "description") or normalize(item.description))
    said = f"{title} {brand} {normalize(item.title)}".lower()
    return description, said, _joined([title, description])


def prefetch(items: list[ItemText], lang: str, query: str | None = None) -> None:
    """Read what the blurbs of ``items`` (and, with ``query``, their shared keywords) will
    segment from the shared cache in one round trip (``segmentation.prefetch``)."""
    lang = pick_language(lang)
    wanted = []
    for item in items:
        try:
            _, said, joined = _feature_texts(item, lang, *_blurb_subject(item, lang))
            if query:
                wanted.append((segmentation.TOKENS, _item_text(item).lower()))
        except Exception:  # noqa: BLE001 - bad data: its own blurb fails, alone, when made
            continue
        wanted += [(segmentation.TOKENS, said), (segmentation.keywords_kind(_KEYWORDS), joined)]
    segmentation.prefetch(wanted)


def _choose_features(item: ItemText, lang: str, title: str, brand: str) -> list[tuple[int, str]]:
    """Candidate feature phrases, best first, as (position, phrase): short text attributes
    first, then the description's most informative clauses (those with the item's
    weightiest keywords that its title and brand do not already say). Every phrase is
    whole: a clause with 不/无/no/without keeps its negation or is not used."""
    description, said, joined = _feature_texts(item, lang, title, brand)
    said_tokens = segmentation.item_tokens(said)
    weights = {}
    for rank, word in enumerate(segmentation.item_keywords(joined, _KEYWORDS)):
        if word not in said_tokens and not (is_han(word) and word in said):
            weights[word] = 12 - rank
    scored = [
        (-1000, position - len(item.attributes or {}), phrase)
        for position, phrase in enumerate(_attribute_phrases(item, lang))
        if _usable(phrase, lang, said, brand)
    ]
    for position, clause in enumerate(_clauses(description, lang)):
        if _usable(clause, lang, said, brand):
            lowered = clause.lower()
            score = sum(weight for word, weight in weights.items() if word in lowered)
            scored.append((-score, position, _lower_first(clause) if lang == "en" else clause))
    chosen: list[tuple[int, str]] = []
    for _, position, phrase in sorted(scored):
        lowered = phrase.lower()
        if not any(lowered in c.lower() or c.lower() in lowered for _, c in chosen):
            chosen.append((position, phrase))
            if len(chosen) == _MAX_CANDIDATES:
                break
    return chosen


def _feature_options(ranked: list[tuple[int, str]]) -> list[list[str]]:
    """The feature lists a blurb tries, longest first: the best two (in the order the
    item's text gives them), then each candidate alone, best first."""
    options = [[phrase for _, phrase in sorted(ranked[:_MAX_FEATURES])]] if ranked else []
    return options + [[phrase] for _, phrase in ranked[1:] if len(ranked) > 1] + [[]]


def _subject(title: str, lang: str, brand: str, max_chars: int) -> str:
    """What the blurb is about: "这款北岭羽绒服", "Down Jacket from Beiling"."""
    shown = _clip(title, max_chars)
    # The brand is named unless the title already does.
    brand = brand if brand and brand.lower() not in title.lower() else ""
    if lang == "zh":
        if not shown:
            return f"这款{brand}商品"
        # Latin brand and title words need a space between them; Chinese ones do not.
        gap = " " if brand and (brand[-1].isascii() or shown[0].isascii()) else ""
        return f"这款{brand}{gap}{shown}"
    shown = shown or "This item"
    return f"{shown} from {brand}" if brand else shown


def _phrase(item: ItemText, reason: Reason, lang: str, detail_chars: int) -> str:
    """The closing phrase for the reason; ``detail_chars=0`` leaves out titles and queries."""
    table = _PHRASES[lang].get(reason.type)
    if table is None:
        # A reason kind without blurb phrases of its own: its reason text, as a phrase.
        text = _clip(reason.text, 24 if lang == "zh" else 48)
        return text if lang == "zh" else _lower_first(text)
    anchored, plain = table
    generic = _pick(plain, item, reason.type) if plain else ""
    if detail_chars <= 0:
        return generic
    anchor, anchor_kind, query = _read_reason(reason)
    if reason.type in ("query", "intent"):
        if not query:
            return generic
        options = anchored if reason.keywords else _MEANING_PHRASES[lang][reason.type]
        return _pick(options, item, reason.type).format(query=_reclip(query, detail_chars))
    if not anchor or not anchored:
        return generic
    action = _ACTIONS.get(anchor_kind, _ACTIONS[_DEFAULT_ACTION])
    verb = action.blurb_zh if lang == "zh" else action.blurb_en
    phrase = _pick(anchored, item, reason.type)
    return phrase.format(anchor=_reclip(anchor, detail_chars), verb=verb)


def _reclip(text: str, max_chars: int) -> str:
    """Clip text that explain may already have clipped, without doubling the "…"."""
    if len(text) <= max_chars + 1:
        return text
    return _clip(text.removesuffix("…"), max_chars)


def _capitalised(text: str) -> str:
    """The first letter upper-case, unless its word is written in mixed case ("iPhone")."""
    first = text.split(" ", 1)[0]
    if text[:1].islower() and not any(ch.isupper() for ch in first):
        return text[0].upper() + text[1:]
    return text


def _sentence(
    lang: str, frame: int, subject: str, features: list[str], price: str, phrase: str
) -> str:
    """The blurb in one of the language's sentence frames; parts that are empty drop out.

    Chinese always starts with the subject ("这款…")::

        0: 这款X，F1、F2，¥899，R。
        1: 这款X（¥899）：F1、F2，R。
        2: 这款X，R：F1、F2，售价¥899。

    English::

        0: X from B at ¥899: F1; F2 — R.
        1: R: X from B at ¥899 — F1; F2.
        2: X from B (¥899): F1; F2, and R.
    """
    if lang == "zh":
        # Clauses that list things themselves ("适合通勤、出游") are set apart by "，".
        listed = ("，" if any("、" in f for f in features) else "、").join(features)
        if frame == 1 and price:
            return f"{subject}（{price}）" + (f"：{listed}，" if listed else "，") + phrase + "。"
        if frame == 2:
            rest = "，".join(p for p in (listed, f"售价{price}" if price else "") if p)
            return f"{subject}，{phrase}" + (f"：{rest}" if rest else "") + "。"
        return "，".join(p for p in (subject, listed, price, phrase) if p) + "。"
    listed = "; ".join(features)
    if frame == 1:
        head = subject + (f" at {price}" if price else "")
        text = f"{_capitalised(phrase)}: {head}" + (f" — {listed}" if listed else "")
    elif frame == 2:
        head = subject + (f" ({price})" if price else "")
        text = head + (f": {listed}, and " if listed else ", ") + phrase
    else:
        head = subject + (f" at {price}" if price else "")
        text = head + (f": {listed} — " if listed else ", ") + phrase
    return _capitalised(text) + "."


def _blurb_subject(item: ItemText, lang: str) -> tuple[str, str]:
    """A blurb's title and brand (clipped) of ``item`` in ``lang`` (one of LANGUAGES)."""
    title = display_title(item, lang)
    brand = _attribute(item, "brand")
    # Chinese copy gives Latin names (a brand, a film title) more letters than Chinese ones.
    zh = lang == "zh"
    return title, _clip(brand, 12 if zh and _HAN_CHAR.search(brand) else 20 if zh else 30)


def blurb(item: ItemText, reason: Reason, lang: str) -> str:
    """One sentence about ``item`` for the list: its brand, price, one or two feature
    phrases from its attributes and description, and its reason.

    At most ``BLURB_MAX_CHARS`` characters (80 in Chinese, 160 in English), ending in "。"
    or "."; the sentence frame and the reason's phrasing are picked per item (by a hash
    of its title), so neighbours in a list read differently but one item always reads
    the same. Raises ``ValueError`` for an unknown reason type or language.
    """
    _check_kind(reason.type)
    lang = pick_language(lang)
    zh = lang == "zh"
    title, brand = _blurb_subject(item, lang)
    price = _clip(_price(item), 16)
    ranked = list(_features(item, lang, title, brand))
    frame = int(_pick(tuple(str(i) for i in range(_FRAMES)), item, "frame"))
    title_chars, detail_chars = (24 if _HAN_CHAR.search(title) else 40, 20) if zh else (60, 40)
    # Shorten step by step until it fits: the two best features, each feature alone, none;
    # then shorter titles, and last a phrase without the anchor title and a subject without
    # the brand, which always fits: a clipped title, a clipped price and a fixed phrase come
    # to about 60 characters in Chinese and 100 in English.
    shortest = [min((p for _, p in ranked), key=len)] if ranked else []
    attempts = [(f, title_chars, detail_chars, True) for f in _feature_options(ranked)]
    attempts += [
        (shortest, title_chars // 2, detail_chars // 2, True),
        ([], title_chars // 2, detail_chars // 2, True),
        ([], title_chars // 2, 0, False),
    ]
    for features, title_max, detail_max, with_brand in attempts:
        subject = _subject(title, lang, brand if with_brand else "", title_max)
        phrase = _phrase(item, reason, lang, detail_max)
        text = _sentence(lang, frame, subject, features, price, phrase)
        if len(text) <= BLURB_MAX_CHARS[lang]:
            break
    return text
