"""Deterministic data for the demo shop: a bilingual catalogue, shoppers and their behaviour.

Everything here is plain Python (no Django) so that management commands, fixtures, benchmarks
and tests can all share it.  :func:`generate` builds

* 352 items in eight categories, with Chinese titles and descriptions on the item itself and
  faithful English translations in ``translations["en"]`` (``title``/``description``).  Titles
  and descriptions are composed from per-category tables of product types, title modifiers
  (audience, style, material, feature...) and selling-point sentences, each written in both
  languages, so every Chinese phrase has a real English counterpart;
* 72 users, six per persona (budget student, new mother, tech enthusiast...), each persona
  with preferred categories, tags and a price range; a third of them shop in English;
* ~7,000-9,000 behaviours over the 60 days before ``now``: browsing sessions (view -> click -> cart
  -> purchase), likes and dislikes, ratings, free-text searches and reviews in the user's
  language.

The output depends only on ``seed`` and ``now``: the module never uses the global ``random``
state, nor the clock except for the default ``now``.

The bilingual phrase tables live next to this module as UTF-8 package data in
``recommender/demo/tables/``: one file per category (``clothing.txt``, ``electronics.txt``,
``books.txt``, ``food.txt``, ``home.txt``, ``beauty.txt``, ``sports.txt``, ``baby_toys.txt``),
plus ``personas.txt`` and ``reviews.txt``.  They are plain text with one directive per line and
the English translation on an indented line below each Chinese sentence; the "Data tables"
comment below describes the format.  They are read once, at import, through
:mod:`importlib.resources`, so they work from a source checkout and from an installed wheel.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from importlib.resources import files
from pathlib import Path
from typing import Any

DEFAULT_SEED = 20261125
HISTORY_DAYS = 60
ITEMS_PER_CATEGORY = 44
USERS_PER_PERSONA = 6
INACTIVE_SHARE = 0.03
EXPLORATION_RATE = 0.28  # share of browsing outside the persona's categories
LOCAL_TZ = timezone(timedelta(hours=8))  # the demo shop runs on China Standard Time

BEHAVIOUR_KINDS = (
    "view",
    "click",
    "cart",
    "purchase",
    "rating",
    "like",
    "dislike",
    "search",
    "review",
    "share",
)

# --------------------------------------------------------------------------------------------
# Data tables: recommender/demo/tables/NAME.txt (UTF-8 package data, read by _table below)
#
# CATEGORY_TABLES name the eight category tables, in catalogue order; personas.txt and
# reviews.txt hold the shoppers' personas and the review phrases.  There are no comments in
# the files; blank lines are ignored.
#
# One line per entry: a directive word at the start of the line, then its text.  Every Chinese
# sentence is followed by an indented line with its English translation.
#
#   category SLUG: 中文 = English       brands A, B, C       scene 中文。 / English.
#   type KEY: 中文名 = English Name      a product type (no name: titles are the modifiers only)
#   price LOW-HIGH                       in CNY
#   tags a, b, c                         always on the item; chosen modifiers are added
#   tag-slots 0 1                        which slots' modifiers become tags (default: all,
#                                        "-": none)
#   noun 中文 = english                  how reviews refer to it (default: the name)
#   title {0}{1}{n} {2} = {0} {1} {n}, {2}
#                                        title templates: {0}, {1}... modifiers, {n} the name
#                                        (default: modifiers then name, in the same order)
#   slot 女士 = Women's | 男士 = Men's | -
#       | ...                            one title modifier per slot, "-" is none (repeat it to
#                                        make it likelier); indented "|" lines continue a slot
#   note 保暖: 中文。 / English.          a description sentence used when that modifier is in
#   material 中文。 / English.           the description opens with one of these...
#   point 中文。 / English.              ...and continues with notes, points or a scene
#
#   persona SLUG: 中文 = English         categories SLUG WEIGHT, ...   tags ...   price LOW-HIGH
#   search CATEGORY | KEYWORDS | 中文查询 / english query
#                                        keywords are matched against Chinese titles and tags
#   opener|closer SENTIMENT: 中文 / English      review SLUG SENTIMENT: 中文 / English
#                                        sentiment is pos, mid or neg; {p} is the product noun
# --------------------------------------------------------------------------------------------

TABLES_PACKAGE = "recommender.demo"
CATEGORY_TABLES = (
    "clothing",
    "electronics",
    "books",
    "food",
    "home",
    "beauty",
    "sports",
    "baby_toys",
)

# Items that later tests and demos rely on: (category, product type, Chinese modifiers).
ANCHORS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("clothing", "down_jacket", ("女士", "加长款", "保暖")),  # 女士加长款保暖羽绒服
    ("clothing", "down_jacket", ("女性", "长款连帽", "")),  # 女性长款连帽羽绒服
    ("clothing", "down_jacket", ("女士", "过膝", "加厚")),
    ("clothing", "down_jacket", ("男士", "短款", "轻薄")),
    ("clothing", "jacket", ("高性价比", "男士", "")),  # 高性价比男士夹克外套
    ("clothing", "jacket", ("高性价比", "女士", "休闲")),
    ("clothing", "trench_coat", ("高性价比", "女士", "双排扣")),
    ("clothing", "trench_coat", ("", "男士", "英伦")),
    ("clothing", "wool_coat", ("女士", "双面呢")),
    ("electronics", "keyboard", ("有线", "87键", "青轴")),  # 有线87键机械键盘青轴
    ("electronics", "keyboard", ("无线三模", "104键", "青轴")),
    ("electronics", "earbuds", ("主动降噪", "真无线")),
    ("food", "green_tea", ("有机", "", "250g")),  # 有机绿茶礼盒 250g
    ("food", "green_tea", ("有机", "龙井", "500g")),
)

ZH_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
ZH_GIVEN_NAMES = (
    "小雨 子涵 浩然 思琪 一鸣 雨桐 嘉怡 俊杰 欣妍 梓轩 "
    "佳琪 明轩 诗涵 宇航 晓峰 静怡 文博 若曦 志强 晨阳"
).split()
EN_FIRST_NAMES = (
    "Emily James Olivia Daniel Sophie Michael Grace Ryan Chloe Ethan Hannah Lucas Mia Noah Zoe "
    "Oliver Amelia Jack Isla Leo Ava Henry Ruby Sam"
).split()
EN_LAST_NAMES = (
    "Smith Chen Johnson Wong Brown Lee Miller Garcia Taylor Wilson Liu Martin Clarke Evans Ng Park"
).split()

# Local hours (UTC+8) at which sessions start, weighted towards lunch time and the evening.
SESSION_HOURS = tuple(range(7, 24))
SESSION_HOUR_WEIGHTS = (1, 2, 3, 3, 3, 5, 5, 3, 3, 3, 3, 4, 6, 8, 9, 8, 5)

# --------------------------------------------------------------------------------------------
# Reading the tables
# --------------------------------------------------------------------------------------------

Pair = tuple[str, str]
"""A (Chinese, English) pair: a word, a phrase or a whole sentence and its translation."""

EMPTY: Pair = ("", "")


@dataclass(frozen=True)
class ProductType:
    """One kind of product and the phrases its titles and descriptions are composed from."""

    key: str
    name: Pair
    price: tuple[float, float]
    tags: tuple[str, ...]
    slots: tuple[tuple[Pair, ...], ...]
    notes: dict[str, Pair]
    materials: tuple[Pair, ...]
    points: tuple[Pair, ...]
    noun: Pair
    title: Pair | None = None  # (zh, en) templates
    tag_slots: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Category:
    """A top-level shop category with its brands, closing sentences and product types."""

    slug: str
    name: Pair
    brands: tuple[str, ...]
    scenes: tuple[Pair, ...]
    types: tuple[ProductType, ...]


@dataclass(frozen=True)
class Query:
    """A search a persona might type, in both languages, and what it is looking for."""

    text: Pair
    category: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Persona:
    """A kind of shopper: what they browse, what they like and what they can afford."""

    slug: str
    name: Pair
    categories: dict[str, float]
    tags: tuple[str, ...]
    price: tuple[float, float]
    queries: tuple[Query, ...]


@dataclass(frozen=True)
class ReviewPhrases:
    """Review building blocks by sentiment ("pos", "mid", "neg")."""

    openers: dict[str, tuple[Pair, ...]]
    closers: dict[str, tuple[Pair, ...]]
    bodies: dict[tuple[str, str], tuple[Pair, ...]]  # (category, sentiment) -> bodies


class TableError(ValueError):
    """A data table line could not be read."""


@dataclass
class _Entry:
    directive: str
    text: str
    more: list[str] = field(default_factory=list)  # indented continuation lines

    def pair(self) -> Pair:
        """``中文 = English`` on the line itself."""
        zh, sep, en = self.text.partition(" = ")
        if not sep:
            raise TableError(f"{self.directive} {self.text!r}: expected '中文 = English'")
        return zh.strip(), en.strip()

    def translated(self, text: str | None = None) -> Pair:
        """The Chinese text on the line and the English on the one indented line below it."""
        if len(self.more) != 1:
            raise TableError(f"{self.directive} {self.text!r}: expected one English line below")
        return (self.text if text is None else text), self.more[0]

    def keyed(self) -> tuple[str, Pair]:
        """``KEY: 中文`` with the English below."""
        key, sep, zh = self.text.partition(": ")
        if not sep:
            raise TableError(f"{self.directive} {self.text!r}: expected 'KEY: 中文'")
        return key.strip(), self.translated(zh.strip())

    def range(self) -> tuple[float, float]:
        low, _, high = self.text.partition("-")
        return float(low), float(high)

    def words(self) -> tuple[str, ...]:
        return tuple(word.strip() for word in self.text.split(",") if word.strip())


def _entries(table: str) -> list[_Entry]:
    """Split a table into entries: unindented directive lines and their indented followers."""
    entries: list[_Entry] = []
    for line in table.splitlines():
        if not line.strip():
            continue
        if line[0].isspace():
            if not entries:
                raise TableError(f"continuation line without an entry: {line!r}")
            entries[-1].more.append(line.strip())
        else:
            directive, _, text = line.partition(" ")
            entries.append(_Entry(directive, text.strip()))
    return entries


def _slot(entry: _Entry) -> tuple[Pair, ...]:
    if any(not line.startswith("|") for line in entry.more):
        raise TableError(f"slot {entry.text!r}: continuation lines must start with '|'")
    options = []
    for spec in " ".join([entry.text, *entry.more]).split("|"):
        spec = spec.strip()
        options.append(EMPTY if spec == "-" else _Entry("slot", spec).pair())
    return tuple(options)


def _product_type(key: str, name: Pair, entries: list[_Entry]) -> ProductType:
    fields: dict[str, Any] = {"slots": [], "notes": {}, "materials": [], "points": []}
    for entry in entries:
        match entry.directive:
            case "price":
                fields["price"] = entry.range()
            case "tags":
                fields["tags"] = entry.words()
            case "tag-slots":
                fields["tag_slots"] = tuple(int(n) for n in entry.text.split() if n != "-")
            case "noun":
                fields["noun"] = entry.pair()
            case "title":
                fields["title"] = entry.pair()
            case "slot":
                fields["slots"].append(_slot(entry))
            case "note":
                word, sentence = entry.keyed()
                fields["notes"][word] = sentence
            case "material" | "point":
                fields[entry.directive + "s"].append(entry.translated())
            case _:
                raise TableError(f"type {key}: unknown directive {entry.directive!r}")
    words = {option[0] for slot in fields["slots"] for option in slot}
    if unknown := set(fields["notes"]) - words:
        raise TableError(f"type {key}: notes for modifiers it does not have: {sorted(unknown)}")
    if not fields["materials"] or not fields["points"]:
        raise TableError(f"type {key}: needs at least one material and one point")
    return ProductType(
        key=key,
        name=name,
        price=fields["price"],
        tags=fields["tags"],
        slots=tuple(fields["slots"]),
        notes=fields["notes"],
        materials=tuple(fields["materials"]),
        points=tuple(fields["points"]),
        noun=fields.get("noun") or (name[0], name[1].lower()),
        title=fields.get("title"),
        tag_slots=fields.get("tag_slots"),
    )


def _category(table: str) -> Category:
    """Read one category table (see the format above)."""
    entries = _entries(table)
    head = entries[0]
    if head.directive != "category":
        raise TableError(f"a category table must start with 'category', not {head.text!r}")
    slug, _, names = head.text.partition(": ")
    brands: tuple[str, ...] = ()
    scenes: list[Pair] = []
    types: list[ProductType] = []
    pending: tuple[str, Pair, list[_Entry]] | None = None
    for entry in [*entries[1:], _Entry("type", "")]:  # the sentinel closes the last type
        if entry.directive == "type":
            if pending is not None:
                types.append(_product_type(*pending))
            key, _, name = entry.text.partition(": ")
            pending = (key, _Entry("type", name).pair() if name else EMPTY, [])
        elif pending is not None:
            pending[2].append(entry)
        elif entry.directive == "brands":
            brands = entry.words()
        elif entry.directive == "scene":
            scenes.append(entry.translated())
        else:
            raise TableError(f"category {slug}: unexpected {entry.directive!r} before any type")
    return Category(slug, _Entry("category", names).pair(), brands, tuple(scenes), tuple(types))


def _personas(table: str) -> tuple[Persona, ...]:
    """Read the persona table."""
    personas: list[dict[str, Any]] = []
    for entry in _entries(table):
        if entry.directive == "persona":
            slug, _, names = entry.text.partition(": ")
            personas.append({"slug": slug, "name": _Entry("persona", names).pair(), "queries": []})
        elif not personas:
            raise TableError(f"{entry.directive!r} before the first persona")
        elif entry.directive == "categories":
            personas[-1]["categories"] = {
                slug: float(weight) for slug, weight in (word.split() for word in entry.words())
            }
        elif entry.directive == "tags":
            personas[-1]["tags"] = entry.words()
        elif entry.directive == "price":
            personas[-1]["price"] = entry.range()
        elif entry.directive == "search":
            category, keywords, text = (part.strip() for part in entry.text.split("|", 2))
            query = Query(entry.translated(text), category, tuple(keywords.split()))
            personas[-1]["queries"].append(query)
        else:
            raise TableError(f"persona table: unknown directive {entry.directive!r}")
    return tuple(
        Persona(**{**persona, "queries": tuple(persona["queries"])}) for persona in personas
    )


def _reviews(table: str) -> ReviewPhrases:
    """Read the review phrase table."""
    parts: dict[str, dict[Any, list[Pair]]] = {"opener": {}, "closer": {}, "review": {}}
    for entry in _entries(table):
        if entry.directive not in parts:
            raise TableError(f"review table: unknown directive {entry.directive!r}")
        key, sentence = entry.keyed()
        if entry.directive == "review":
            category, sentiment = key.split()
            parts["review"].setdefault((category, sentiment), []).append(sentence)
        else:
            parts[entry.directive].setdefault(key, []).append(sentence)
    openers, closers, bodies = (
        {key: tuple(values) for key, values in parts[name].items()}
        for name in ("opener", "closer", "review")
    )
    return ReviewPhrases(openers, closers, bodies)


def _table(name: str) -> str:
    """The text of ``tables/NAME.txt``, from the source tree or the installed package."""
    return (files(TABLES_PACKAGE) / "tables" / f"{name}.txt").read_text(encoding="utf-8")


CATEGORIES: tuple[Category, ...] = tuple(_category(_table(name)) for name in CATEGORY_TABLES)
PERSONAS: tuple[Persona, ...] = _personas(_table("personas"))
REVIEWS: ReviewPhrases = _reviews(_table("reviews"))

# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


@dataclass
class DemoData:
    """The generated demo shop: plain dicts, ready for JSONL or the importer."""

    items: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    behaviours: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Item:
    """An item's record plus what the behaviour simulation needs to know about it."""

    record: dict[str, Any]
    category: str
    noun: Pair
    price: float
    text: str  # Chinese title and tags, for keyword and tag matching
    popularity: float
    anchor: bool = False

    @property
    def external_id(self) -> str:
        return self.record["external_id"]


@dataclass
class _Shopper:
    """A user: their persona and personal quirks."""

    external_id: str
    name: str
    persona: Persona
    lang: str
    categories: dict[str, float]
    price: tuple[float, float]
    device: str
    search_rate: float
    sessions: int

    @property
    def record(self) -> dict[str, Any]:
        attributes = {"persona": self.persona.slug, "name": self.name, "lang": self.lang}
        return {"external_id": self.external_id, "attributes": attributes}

    def likes(self, item: _Item) -> bool:
        """Whether the item is in one of the persona's categories."""
        return item.category in self.categories

    def loves(self, item: _Item) -> bool:
        """Whether the item is in the persona's categories, price range and taste."""
        low, high = self.price
        return (
            self.likes(item)
            and low <= item.price <= high
            and any(tag in item.text for tag in self.persona.tags)
        )


def _tidy(text: str) -> str:
    """Collapse the gaps and dangling commas that empty modifiers leave behind."""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,:])", r"\1", text)
    return text.strip(" ,")


def _render_title(ptype: ProductType, options: Sequence[Pair]) -> Pair:
    """The (zh, en) title of a product type with the chosen modifiers."""
    titles = []
    for lang in (0, 1):
        words = [option[lang] for option in options]
        if ptype.title:
            titles.append(ptype.title[lang].format(*words, n=ptype.name[lang]))
        else:
            titles.append(("" if lang == 0 else " ").join([*words, ptype.name[lang]]))
    return _tidy(titles[0]), _tidy(titles[1])


def _describe(
    rng: random.Random, category: Category, ptype: ProductType, options: Sequence[Pair]
) -> Pair:
    """A 2-3 sentence (zh, en) description: material, selling points, maybe a closing line."""
    sentences = [rng.choice(ptype.materials)]
    sentences += [ptype.notes[zh] for zh, _ in options if zh in ptype.notes][:2]
    if len(sentences) < 3:
        sentences.append(rng.choice(ptype.points))
    if len(sentences) < 3 and rng.random() < 0.8:
        sentences.append(rng.choice(category.scenes))
    return "".join(zh for zh, _ in sentences), " ".join(en for _, en in sentences)


def _tags(ptype: ProductType, options: Sequence[Pair]) -> list[str]:
    """The type's tags plus its word-like modifiers (not sizes, weights or long phrases)."""
    tags = list(ptype.tags)
    for index, (zh, _) in enumerate(options):
        if ptype.tag_slots is not None and index not in ptype.tag_slots:
            continue
        if zh and len(zh) <= 6 and not re.search(r"\d", zh):
            tags.append(zh)
    if any("性价比" in zh for zh, _ in options):
        tags.append("性价比")
    return list(dict.fromkeys(tags))


def _price(rng: random.Random, low: float, high: float, bargain: bool) -> float:
    """A shop-like price (199.0, 459.9, 89.9...) in the range; bargains in its lower half."""
    if bargain:
        high = low + (high - low) * 0.45
    raw = rng.uniform(low, high)
    if raw >= 100:
        price = (int(raw) // 10) * 10 + rng.choice((9.0, 9.0, 8.0, 9.9))
    else:
        price = int(raw) + rng.choice((0.9, 0.9, 0.8, 0.0))
    return round(price, 2)


def _find_options(ptype: ProductType, words: Sequence[str]) -> tuple[Pair, ...]:
    """Look up an anchor's modifiers by their Chinese text."""
    found = []
    for slot, word in zip(ptype.slots, words, strict=True):
        matches = [option for option in slot if option[0] == word]
        if not matches:
            raise ValueError(f"{ptype.key}: no modifier {word!r}")
        found.append(matches[0])
    return tuple(found)


def _build_items(rng: random.Random) -> list[_Item]:
    """Compose ITEMS_PER_CATEGORY items with distinct titles per category, anchors first."""
    items: list[_Item] = []
    seen: set[str] = set()
    for category in CATEGORIES:
        by_key = {ptype.key: ptype for ptype in category.types}
        planned = [
            (by_key[key], _find_options(by_key[key], words))
            for slug, key, words in ANCHORS
            if slug == category.slug
        ]
        types = list(category.types)
        rng.shuffle(types)
        made = attempts = 0
        while made < ITEMS_PER_CATEGORY:
            anchor = made < len(planned)
            if anchor:
                ptype, options = planned[made]
            else:
                if attempts > 200 * ITEMS_PER_CATEGORY:
                    raise RuntimeError(f"cannot compose enough distinct {category.slug} items")
                ptype = types[attempts % len(types)]
                attempts += 1
                options = tuple(rng.choice(slot) for slot in ptype.slots)
            title, title_en = _render_title(ptype, options)
            if title in seen or title_en in seen:
                if anchor:
                    raise ValueError(f"duplicate anchor title {title!r}")
                continue
            seen.update((title, title_en))
            description, description_en = _describe(rng, category, ptype, options)
            price = _price(rng, *ptype.price, bargain="性价比" in description)
            tags = _tags(ptype, options)
            record = {
                "external_id": f"sku-{len(items) + 1:05d}",
                "title": title,
                "description": description,
                "category": category.slug,
                "tags": tags,
                "attributes": {
                    "price": price,
                    "brand": rng.choice(category.brands),
                    "category_zh": category.name[0],
                    "category_en": category.name[1],
                },
                "translations": {"en": {"title": title_en, "description": description_en}},
                "is_active": True,
            }
            text = " ".join([title, *tags])
            popularity = rng.lognormvariate(0.0, 0.8)
            items.append(_Item(record, category.slug, ptype.noun, price, text, popularity, anchor))
            made += 1
    candidates = [item for item in items if not item.anchor]
    for item in rng.sample(candidates, round(len(items) * INACTIVE_SHARE)):
        item.record["is_active"] = False
    return items


def _build_users(rng: random.Random) -> list[_Shopper]:
    """USERS_PER_PERSONA users per persona, a third of each persona shopping in English."""
    english = USERS_PER_PERSONA // 3
    plan = [
        (persona, lang)
        for persona in PERSONAS
        for lang in ["en"] * english + ["zh"] * (USERS_PER_PERSONA - english)
    ]
    rng.shuffle(plan)
    zh_names = [surname + given for surname in ZH_SURNAMES for given in ZH_GIVEN_NAMES]
    en_names = [f"{first} {last}" for first in EN_FIRST_NAMES for last in EN_LAST_NAMES]
    names = {
        "zh": rng.sample(zh_names, sum(lang == "zh" for _, lang in plan)),
        "en": rng.sample(en_names, sum(lang == "en" for _, lang in plan)),
    }
    shoppers = []
    for number, (persona, lang) in enumerate(plan, start=1):
        low, high = persona.price
        shoppers.append(
            _Shopper(
                external_id=f"u-{number:04d}",
                name=names[lang].pop(),
                persona=persona,
                lang=lang,
                categories={
                    slug: weight * rng.uniform(0.7, 1.3)
                    for slug, weight in persona.categories.items()
                },
                price=(low * rng.uniform(0.7, 1.0), high * rng.uniform(0.8, 1.3)),
                device="mobile" if rng.random() < 0.7 else "desktop",
                search_rate=rng.uniform(0.25, 0.55),
                sessions=max(4, min(30, round(rng.lognormvariate(2.4, 0.4)))),
            )
        )
    return shoppers


def _affinity(item: _Item, shopper: _Shopper, keywords: Sequence[str] = ()) -> float:
    """How likely this shopper is to look at this item (an unnormalised weight)."""
    weight = item.popularity
    if not item.record["is_active"]:
        weight *= 0.15
    low, high = shopper.price
    if not low <= item.price <= high:
        weight *= 0.2
    if any(tag in item.text for tag in shopper.persona.tags):
        weight *= 2.5
    if keywords and any(keyword in item.text for keyword in keywords):
        weight *= 10.0
    return weight


def _pick(
    rng: random.Random,
    pool: Sequence[_Item],
    shopper: _Shopper,
    keywords: Sequence[str],
    exclude: set[str],
) -> _Item:
    """Pick an item from a category pool, weighted by the shopper's affinity."""
    weights = [
        0.0 if item.external_id in exclude else _affinity(item, shopper, keywords) for item in pool
    ]
    if not any(weights):
        weights = [1.0] * len(pool)
    return rng.choices(pool, weights=weights, k=1)[0]


def _rating(rng: random.Random, item: _Item, shopper: _Shopper) -> int:
    """1-5 stars: generous for items that suit the persona, mixed for the others."""
    if shopper.loves(item):
        weights = (1, 2, 7, 32, 58)
    elif shopper.likes(item):
        weights = (2, 4, 14, 42, 38)
    else:
        weights = (10, 16, 34, 26, 14)
    return rng.choices((1, 2, 3, 4, 5), weights=weights, k=1)[0]


def _review_text(rng: random.Random, item: _Item, stars: int, lang: str) -> str:
    """A short review in the shopper's language, its tone following the stars."""
    sentiment = "pos" if stars >= 4 else "mid" if stars == 3 else "neg"
    index = 0 if lang == "zh" else 1
    parts = []
    if rng.random() < 0.5:
        parts.append(rng.choice(REVIEWS.openers[sentiment])[index])
    body = rng.choice(REVIEWS.bodies[item.category, sentiment])[index]
    parts.append(body.format(p=item.noun[index]))
    if rng.random() < 0.6:
        parts.append(rng.choice(REVIEWS.closers[sentiment])[index])
    return ("" if lang == "zh" else " ").join(parts)


class _EventLog:
    """Collects events as they are simulated; ids are given once all are sorted by time."""

    def __init__(self) -> None:
        self._events: list[tuple[datetime, int, dict[str, Any]]] = []

    def add(
        self,
        when: datetime,
        shopper: _Shopper,
        kind: str,
        context: dict[str, str],
        *,
        item: _Item | None = None,
        value: float | None = None,
        text: str = "",
    ) -> None:
        record = {
            "user": shopper.external_id,
            "item": item.external_id if item else None,
            "kind": kind,
            "value": value,
            "text": text,
            "context": context,
        }
        self._events.append((when, len(self._events), record))

    def finish(self) -> list[dict[str, Any]]:
        ordered = sorted(self._events, key=lambda event: (event[0], event[1]))
        return [
            {
                "event_id": f"demo-{number:06d}",
                **record,
                "occurred_at": when.astimezone(UTC).isoformat(timespec="seconds"),
            }
            for number, (when, _, record) in enumerate(ordered, start=1)
        ]


class _Session:
    """One visit by one shopper: a clock that moves forward with every event."""

    def __init__(
        self,
        rng: random.Random,
        log: _EventLog,
        shopper: _Shopper,
        start: datetime,
        sid: str,
        device: str | None = None,
    ):
        self.rng = rng
        self.log = log
        self.shopper = shopper
        self.clock = start
        self.sid = sid
        if device is None:  # usually their favourite device
            device = shopper.device if rng.random() < 0.85 else rng.choice(("mobile", "desktop"))
        self.device = device

    def emit(self, kind: str, page: str, pause: tuple[int, int] = (2, 20), **fields: Any) -> None:
        """Record an event now, then let some seconds pass."""
        context = {"device": self.device, "page": page, "session": self.sid}
        self.log.add(self.clock, self.shopper, kind, context, **fields)
        self.clock += timedelta(seconds=self.rng.randint(*pause))


def _browse(
    rng: random.Random, session: _Session, by_category: dict[str, list[_Item]], now: datetime
) -> None:
    """Maybe a search, a handful of views with some clicks and carts, then checkout."""
    shopper = session.shopper
    query: Query | None = None
    if rng.random() < shopper.search_rate:
        query = rng.choice(shopper.persona.queries)
        text = query.text[0] if shopper.lang == "zh" else query.text[1]
        session.emit("search", "search", text=text)
    seen: set[str] = set()
    carted: list[_Item] = []
    slugs, weights = list(shopper.categories), list(shopper.categories.values())
    for _ in range(rng.randint(2, 8)):
        keywords: tuple[str, ...] = ()
        if query is not None and rng.random() < 0.7:
            slug, keywords, page = query.category, query.keywords, "search"
        elif rng.random() >= EXPLORATION_RATE:
            slug = rng.choices(slugs, weights=weights, k=1)[0]
            page = rng.choice(("home", "category", "category", "recommendation"))
        else:
            slug = rng.choice(CATEGORIES).slug
            page = rng.choice(("home", "recommendation"))
        item = _pick(rng, by_category[slug], shopper, keywords, seen)
        seen.add(item.external_id)
        liked = shopper.likes(item)
        session.emit("view", page, item=item, pause=(3, 40))
        if rng.random() < (0.45 if liked else 0.22):
            session.emit("click", page, item=item, pause=(15, 180))
            if liked and rng.random() < 0.1:
                session.emit("like", "item", item=item)
                if rng.random() < 0.15:
                    session.emit("share", "item", item=item)
            elif not liked and rng.random() < 0.3:
                session.emit("dislike", "item", item=item)
            if rng.random() < (0.32 if liked else 0.1):
                session.emit("cart", "item", item=item)
                carted.append(item)
        elif not liked and rng.random() < 0.08:
            session.emit("dislike", page, item=item)
        session.clock += timedelta(seconds=rng.randint(10, 120))
    if carted:
        session.clock += timedelta(seconds=rng.randint(30, 300))
    for item in carted:
        if rng.random() < 0.55:
            session.emit("purchase", "checkout", item=item, pause=(3, 20))
            _follow_up(rng, session, item, now)


def _follow_up(rng: random.Random, session: _Session, item: _Item, now: datetime) -> None:
    """When the parcel arrives (1-6 days later, unless that is the future): rate, review."""
    wants_rating = rng.random() < 0.45
    wants_review = rng.random() < 0.35
    if not (wants_rating or wants_review):
        return
    later = session.clock + timedelta(days=rng.uniform(1, 6))
    if later > now - timedelta(hours=1):
        later = session.clock + timedelta(minutes=rng.randint(5, 30))
    sid = f"{session.sid}-after-{item.external_id}"  # its own short visit to the order page
    after = _Session(rng, session.log, session.shopper, later, sid, session.device)
    stars = _rating(rng, item, session.shopper)
    if wants_rating:
        after.emit("rating", "order", item=item, value=float(stars), pause=(5, 60))
    if wants_review:
        text = _review_text(rng, item, stars, session.shopper.lang)
        after.emit("review", "order", item=item, text=text, pause=(10, 60))
        if stars >= 4 and rng.random() < 0.1:
            after.emit("share", "order", item=item)


def _build_behaviours(
    rng: random.Random, items: list[_Item], shoppers: list[_Shopper], now: datetime
) -> list[dict[str, Any]]:
    """Simulate every shopper's sessions over the HISTORY_DAYS before ``now``."""
    by_category: dict[str, list[_Item]] = {category.slug: [] for category in CATEGORIES}
    for item in items:
        by_category[item.category].append(item)
    first_midnight = (now - timedelta(days=HISTORY_DAYS)).astimezone(LOCAL_TZ)
    first_midnight = first_midnight.replace(hour=0, minute=0, second=0, microsecond=0)
    log = _EventLog()
    for shopper in shoppers:
        # Day 0 starts before the window and the last day may run into ``now``: skip both.
        days = sorted(rng.sample(range(1, HISTORY_DAYS - 1), shopper.sessions))
        for number, day in enumerate(days, start=1):
            hour = rng.choices(SESSION_HOURS, weights=SESSION_HOUR_WEIGHTS, k=1)[0]
            start = first_midnight + timedelta(days=day, hours=hour, seconds=rng.randint(0, 3599))
            sid = f"{shopper.external_id}-s{number:02d}"
            _browse(rng, _Session(rng, log, shopper, start, sid), by_category, now)
    return log.finish()


def generate(seed: int = DEFAULT_SEED, now: datetime | None = None) -> DemoData:
    """Build the demo shop's items, users and behaviours.

    The result depends only on ``seed`` and ``now``.  ``now`` defaults to the current UTC
    time rounded down to the hour; a naive ``now`` is taken to be UTC.  Every behaviour
    happens in the ``HISTORY_DAYS`` days before ``now``.
    """
    if now is None:
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    rng = random.Random(seed)
    items = _build_items(rng)
    shoppers = _build_users(rng)
    behaviours = _build_behaviours(rng, items, shoppers, now)
    return DemoData(
        items=[item.record for item in items],
        users=[shopper.record for shopper in shoppers],
        behaviours=behaviours,
    )


def write_jsonl(data: DemoData, directory: Path) -> dict[str, Path]:
    """Write items.jsonl, users.jsonl and behaviours.jsonl (UTF-8) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, rows in (
        ("items", data.items),
        ("users", data.users),
        ("behaviours", data.behaviours),
    ):
        path = directory / f"{name}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        paths[name] = path
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    """Write the demo shop as JSONL: ``python -m recommender.demo.catalogue DIRECTORY``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    for name, path in write_jsonl(generate(seed=args.seed), args.directory).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
