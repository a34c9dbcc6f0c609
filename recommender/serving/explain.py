"""Why an item was recommended, and a one-sentence blurb about it, in Chinese or English.

Everything here is template text filled from the item's own words (jieba keywords, brand,
price) and from the evidence that retrieved it: no language model, no database, and the
same input always gives the same sentence. ``explain`` turns retrieval evidence into a
``Reason``; ``blurb`` writes the sentence shown under the item, tied to that reason.
"""

from __future__ import annotations

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

    ``attributes`` may hold ``title_en``, ``description_en``, ``category_zh``,
    ``category_en``, ``price`` and ``brand``; other keys are ignored.
    """

    title: str
    category: str = ""
    tags: tuple[str, ...] = ()
    description: str = ""
    # A dict cannot be hashed; leaving it out of the hash keeps ItemText usable as a key.
    attributes: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Callers often pass a list of tags; a tuple keeps the instance hashable.
        if not isinstance(self.tags, tuple):
            object.__setattr__(self, "tags", tuple(self.tags))


@dataclass(frozen=True)
class Evidence:
    """Why a candidate was retrieved: the strongest source that put it in the list.

    ``anchor`` is the item the user acted on (history, co_occurrence, similar_item,
    positive), ``anchor_kind`` the behaviour on it, ``query`` the search or intent text.
    """

    kind: str
    anchor: ItemText | None = None
    anchor_kind: str | None = None
    query: str | None = None


@dataclass(frozen=True)
class Reason:
    """The reason shown with a recommendation; ``type`` is the evidence kind.

    ``keywords`` are the query words the item shares (query and intent reasons only).
    """

    type: str
    text: str
    keywords: tuple[str, ...] = ()


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
    """The item's title in ``lang``: ``title_en`` for English when the item has one."""
    if pick_language(lang) == "en":
        english = _attribute(item, "title_en")
        if english:
            return english
    return normalize(item.title)


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
    parts += [_attribute(item, key) for key in ("title_en", "category_en", "category_zh")]
    parts.append(_bounded(_attribute(item, "description_en")))
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

# Reason texts by kind: (with an anchor or query, without one).
_REASONS: dict[str, dict[str, tuple[str, str]]] = {
    "zh": {
        "history": ("", "根据你最近看过的商品"),  # anchored text comes from _ACTIONS
        "query": ("与你的搜索“{query}”相关：{keywords}", "与你的搜索相关"),
        "intent": ("与你的搜索“{query}”相关：{keywords}", "与你的搜索相关"),
        "co_occurrence": ("购买了《{anchor}》的用户也购买了它", "同类用户也购买了"),
        "popular": ("热门商品", "热门商品"),
        "trending": ("近期热度上升", "近期热度上升"),
        "new": ("新品上架", "新品上架"),
        "similar_item": ("与《{anchor}》相似", "与你看过的商品相似"),
        "positive": ("与你喜欢的《{anchor}》相似", "与你喜欢的商品相似"),
    },
    "en": {
        "history": ("", "Based on items you looked at recently"),
        "query": ('Matches your search "{query}": {keywords}', "Matches your search"),
        "intent": ('Matches your search "{query}": {keywords}', "Matches your search"),
        "co_occurrence": (
            'People who bought "{anchor}" also bought this',
            "Customers like you also bought this",
        ),
        "popular": ("Popular right now", "Popular right now"),
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
    if kind == "history":
        action = _ACTIONS.get(evidence.anchor_kind or "", _ACTIONS[_DEFAULT_ACTION])
        anchored = action.reason_zh if lang == "zh" else action.reason_en
    anchor = display_title(evidence.anchor, lang) if evidence.anchor else ""
    if not anchor or "{anchor}" not in anchored:
        # No title to name (or a kind that names none): the generic text, never "《》".
        return Reason(kind, plain)
    return Reason(kind, anchored.format(anchor=_clip(anchor, ANCHOR_MAX_CHARS)))


def _template_pattern(template: str) -> re.Pattern[str]:
    """A regex that reads the placeholders back out of a filled-in reason template."""
    pattern = re.escape(template)
    for name in ("anchor", "query", "keywords"):
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

# The closing phrase of a blurb by reason kind: (with an anchor or query, without one).
_PHRASES: dict[str, dict[str, tuple[str, str]]] = {
    "zh": {
        "history": ("和你最近{verb}的《{anchor}》风格相近", "和你最近看过的商品风格相近"),
        "query": ("正合你搜索的{keywords}", "和你的搜索相关"),
        "intent": ("符合你想要的{keywords}", "贴近你描述的需求"),
        "co_occurrence": ("买了《{anchor}》的人常会一起带上它", "和你相似的用户也常买"),
        "popular": ("最近很多人在买", "最近很多人在买"),
        "trending": ("这周热度一路上升", "这周热度一路上升"),
        "new": ("刚刚上架", "刚刚上架"),
        "similar_item": ("和《{anchor}》同属一类，可以对比看看", "和你看过的商品相似"),
        "positive": ("和你喜欢的《{anchor}》一样值得一看", "和你喜欢的商品一样值得一看"),
    },
    "en": {
        "history": (
            'in the style of "{anchor}" you {verb} recently',
            "in the style of what you looked at recently",
        ),
        "query": ("matching {keywords} from your search", "related to your search"),
        "intent": ("fitting what you asked for: {keywords}", "close to what you described"),
        "co_occurrence": (
            'often bought together with "{anchor}"',
            "a favourite of shoppers like you",
        ),
        "popular": (
            "one of the most popular picks right now",
            "one of the most popular picks right now",
        ),
        "trending": ("climbing fast this week", "climbing fast this week"),
        "new": ("just arrived", "just arrived"),
        "similar_item": ('a close alternative to "{anchor}"', "close to items you looked at"),
        "positive": (
            'in the same vein as "{anchor}" that you liked',
            "in the same vein as items you liked",
        ),
    },
}
# A query reason without shared keywords still quotes the query.
_QUERY_PHRASES = {
    "zh": {"query": "和你搜索的“{query}”意思相近", "intent": "贴近你描述的“{query}”"},
    "en": {
        "query": 'close to your search "{query}"',
        "intent": 'close to what you described: "{query}"',
    },
}
_SENTENCE_END = {"zh": "。", "en": "."}


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


def _features(item: ItemText, lang: str, title: str, brand: str) -> list[str]:
    """Up to three characteristic words of the item that its title and brand do not say."""
    english = lang == "en" and bool(
        _attribute(item, "title_en") or _attribute(item, "description_en")
    )
    tags = item.tags[: segmentation.MAX_TAGS]
    if english:
        parts = [
            _attribute(item, "title_en"),
            _attribute(item, "category_en"),
            *(t for t in tags if not is_han(normalize(t))),
            _bounded(_attribute(item, "description_en")),
        ]
    else:
        parts = [item.title, *tags, _bounded(item.description)]
    said = f"{title} {brand}".lower()
    said_tokens = segmentation.item_tokens(said)
    # A category is a noun ("羽绒服"), which reads badly after "主打".
    categories = {
        normalize(c).lower()
        for c in (item.category, _attribute(item, "category_zh"), _attribute(item, "category_en"))
        if c
    }
    chosen: list[str] = []
    for word in segmentation.item_keywords(_joined(parts), top_k=12):
        if (
            word.isdigit()
            or word in said_tokens
            or (is_han(word) and word in said)
            or word in categories
            or any(word in c or c in word for c in chosen)
        ):
            continue
        chosen.append(word)
        if len(chosen) == 3:
            break
    return chosen


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


def _word_list(words: tuple[str, ...] | list[str], lang: str) -> str:
    """Words joined as a list: 外套、性价比 in Chinese, "coat, value and warm" in English."""
    if lang == "zh" or len(words) < 2:
        return "、".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


def _phrase(reason: Reason, lang: str, detail_chars: int) -> str:
    """The closing phrase for the reason; ``detail_chars=0`` leaves out titles and queries."""
    anchor, anchor_kind, query = _read_reason(reason)
    with_detail, plain = _PHRASES[lang][reason.type]
    if detail_chars <= 0:
        return plain
    if reason.type in ("query", "intent"):
        if reason.keywords:
            return with_detail.format(keywords=_word_list(reason.keywords, lang))
        if query:
            return _QUERY_PHRASES[lang][reason.type].format(query=_reclip(query, detail_chars))
        return plain
    if not anchor or "{anchor}" not in with_detail:
        return plain
    action = _ACTIONS.get(anchor_kind, _ACTIONS[_DEFAULT_ACTION])
    verb = action.blurb_zh if lang == "zh" else action.blurb_en
    return with_detail.format(anchor=_reclip(anchor, detail_chars), verb=verb)


def _reclip(text: str, max_chars: int) -> str:
    """Clip text that explain may already have clipped, without doubling the "…"."""
    if len(text) <= max_chars + 1:
        return text
    return _clip(text.removesuffix("…"), max_chars)


def _sentence(lang: str, subject: str, features: list[str], price: str, phrase: str) -> str:
    if lang == "zh":
        head = subject + ("主打" + "、".join(features) if features else "")
        text = "，".join(p for p in (head, price, phrase) if p)
    else:
        head = subject + (f" at {price}" if price else "")
        head += f" ({', '.join(features)})" if features else ""
        text = f"{head}, {phrase}"
        text = text[0].upper() + text[1:]
    return text + _SENTENCE_END[lang]


def blurb(item: ItemText, reason: Reason, lang: str) -> str:
    """One sentence about ``item`` for the list: its key words, brand, price and reason.

    At most 80 characters in Chinese and 160 in English, ending in "。" or ".".
    Raises ``ValueError`` for an unknown reason type or language.
    """
    _check_kind(reason.type)
    lang = pick_language(lang)
    zh = lang == "zh"
    title = display_title(item, lang)
    brand = _clip(_attribute(item, "brand"), 12 if zh else 30)
    price = _clip(_price(item), 16)
    features = _features(item, lang, title, brand)
    title_chars, detail_chars = (24, 20) if zh else (60, 40)
    # Shorten step by step until it fits: fewer features, shorter titles, then a phrase
    # without the anchor title and a subject without the brand. The last step always fits:
    # a 12-character title, a clipped price and a fixed phrase come to about 50 characters
    # in Chinese and 100 in English.
    for n_features, title_max, detail_max, with_brand in (
        (3, title_chars, detail_chars, True),
        (2, title_chars, detail_chars, True),
        (1, title_chars, detail_chars, True),
        (1, title_chars // 2, detail_chars // 2, True),
        (0, title_chars // 2, 0, False),
    ):
        subject = _subject(title, lang, brand if with_brand else "", title_max)
        phrase = _phrase(reason, lang, detail_max)
        text = _sentence(lang, subject, features[:n_features], price, phrase)
        if len(text) <= BLURB_MAX_CHARS[lang]:
            break
    return text
