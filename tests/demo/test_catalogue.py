"""The demo shop generator: deterministic, realistic and internally consistent (no database)."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import tomllib
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest

from recommender.demo import catalogue
from recommender.demo.catalogue import BEHAVIOUR_KINDS, PERSONAS, DemoData, generate, write_jsonl

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
CJK = re.compile(r"[\u3400-\u9fff\u3000-\u303f\uff00-\uffef]")
ITEM_KEYS = {
    "external_id", "title", "description", "category", "tags", "attributes", "translations",
    "is_active",
}  # fmt: skip
ATTRIBUTE_KEYS = {"price", "brand", "category_zh", "category_en"}
BEHAVIOUR_KEYS = {"event_id", "user", "item", "kind", "value", "text", "context", "occurred_at"}


@pytest.fixture(scope="module")
def data() -> DemoData:
    return generate(now=NOW)


@pytest.fixture(scope="module")
def items(data: DemoData) -> dict[str, dict]:
    return {item["external_id"]: item for item in data.items}


@pytest.fixture(scope="module")
def users(data: DemoData) -> dict[str, dict]:
    return {user["external_id"]: user for user in data.users}


def test_same_seed_and_now_give_identical_data(data: DemoData) -> None:
    assert generate(now=NOW) == data
    assert generate(seed=catalogue.DEFAULT_SEED, now=NOW.replace(tzinfo=None)) == data


def test_another_seed_gives_other_data(data: DemoData) -> None:
    other = generate(seed=7, now=NOW)
    assert other.behaviours != data.behaviours
    assert [item["title"] for item in other.items] != [item["title"] for item in data.items]


def test_default_now_is_the_current_hour() -> None:
    data = generate()
    now = datetime.now(UTC)
    latest = max(datetime.fromisoformat(b["occurred_at"]) for b in data.behaviours)
    assert now - timedelta(days=catalogue.HISTORY_DAYS) < latest < now


def test_catalogue_size_and_categories(data: DemoData) -> None:
    categories = Counter(item["category"] for item in data.items)
    assert len(data.items) >= 320
    assert len(categories) >= 8
    assert {"clothing", "electronics", "books", "food", "home", "beauty", "sports"} <= set(
        categories
    )
    assert any("baby" in slug or "toys" in slug for slug in categories)
    assert min(categories.values()) >= 30


def test_item_schema(data: DemoData) -> None:
    for item in data.items:
        assert set(item) == ITEM_KEYS
        assert set(item["attributes"]) == ATTRIBUTE_KEYS
        assert re.fullmatch(r"sku-\d{5}", item["external_id"])
        assert isinstance(item["is_active"], bool)
        assert item["tags"] and all(isinstance(tag, str) and tag for tag in item["tags"])
        attributes = item["attributes"]
        assert isinstance(attributes["price"], float) and attributes["price"] > 0
        assert attributes["brand"] and attributes["category_zh"] and attributes["category_en"]


def test_ids_and_titles_are_unique(data: DemoData) -> None:
    for values in (
        [item["external_id"] for item in data.items],
        [item["title"] for item in data.items],
        [item["translations"]["en"]["title"] for item in data.items],
        [user["external_id"] for user in data.users],
        [behaviour["event_id"] for behaviour in data.behaviours],
    ):
        assert len(values) == len(set(values))


def test_chinese_text_with_real_english_translations(data: DemoData) -> None:
    for item in data.items:
        english_texts = item["translations"]["en"]
        assert set(item["translations"]) == {"en"}
        assert set(english_texts) == {"title", "description"}
        assert CJK.search(item["title"]), item["title"]
        assert CJK.search(item["description"]), item["description"]
        assert 1 <= item["description"].count("。") <= 3, item["description"]
        for english in (english_texts["title"], english_texts["description"]):
            assert english.strip() and not CJK.search(english), english
            assert "{" not in english and "  " not in english, english
        assert english_texts["description"].rstrip()[-1] in ".!", english_texts["description"]


def test_descriptions_mention_concrete_properties(data: DemoData) -> None:
    properties = {
        "clothing": ("面料", "保暖", "质量好", "性价比"),
        "electronics": ("续航", "屏", "蓝牙"),
        "books": ("印刷", "精装", "平装"),
        "food": ("口感", "新鲜", "有机"),
        "home": ("面料", "不粘", "保温", "棉", "清洗", "防"),
        "beauty": ("温和", "保湿", "补水", "滋润", "清洁", "敏感肌"),
        "sports": ("防水", "透气", "防滑", "轻"),
        "baby-toys": ("安全", "宝宝", "亲肤"),
    }
    for category, words in properties.items():
        texts = [item["description"] for item in data.items if item["category"] == category]
        mentioning = [text for text in texts if any(word in text for word in words)]
        assert len(mentioning) >= len(texts) / 4, category
    descriptions = {item["description"] for item in data.items}
    assert len(descriptions) > 0.85 * len(data.items)


def test_prices_are_realistic_per_category(data: DemoData) -> None:
    prices: dict[str, list[float]] = defaultdict(list)
    for item in data.items:
        prices[item["category"]].append(item["attributes"]["price"])
    assert max(prices["books"]) < 200
    assert min(prices["electronics"]) >= 40
    assert max(prices["electronics"]) > 3000
    assert all(price < 20000 for values in prices.values() for price in values)


def test_a_few_items_are_inactive(data: DemoData) -> None:
    inactive = sum(not item["is_active"] for item in data.items)
    assert 0.01 <= inactive / len(data.items) <= 0.06


def _titles(data: DemoData, *words: str) -> list[dict]:
    return [item for item in data.items if all(word in item["title"] for word in words)]


def test_required_items_are_present(data: DemoData) -> None:
    long_down = [
        item
        for item in _titles(data, "羽绒服")
        if "长" in item["title"] and ("女士" in item["title"] or "女性" in item["title"])
    ]
    assert len(long_down) >= 2
    assert any(item["title"] == "女士加长款保暖羽绒服" for item in long_down)
    assert any(item["title"] == "女性长款连帽羽绒服" for item in long_down)
    assert any(
        item["translations"]["en"]["title"] == "Women's Long Warm Down Jacket" for item in long_down
    )

    coats = [
        item
        for item in data.items
        if item["category"] == "clothing"
        and any(word in item["title"] for word in ("外套", "夹克", "风衣", "大衣"))
    ]
    assert len(coats) >= 5
    value = [item for item in coats if "性价比" in item["title"] + item["description"]]
    assert any(item["title"] == "高性价比男士夹克外套" for item in value)
    assert any("质量好" in item["description"] for item in value)

    assert _titles(data, "机械键盘", "青轴")
    assert _titles(data, "有机", "绿茶礼盒")
    for item in long_down[:2] + value[:1]:
        assert item["is_active"]


def test_users_and_personas(data: DemoData) -> None:
    assert len(data.users) >= 60
    personas = Counter(user["attributes"]["persona"] for user in data.users)
    assert set(personas) == {persona.slug for persona in PERSONAS}
    assert len(personas) >= 8
    langs = Counter(user["attributes"]["lang"] for user in data.users)
    assert set(langs) == {"zh", "en"}
    assert 0.25 <= langs["en"] / len(data.users) <= 0.4
    for user in data.users:
        assert re.fullmatch(r"u-\d{4}", user["external_id"])
        assert set(user["attributes"]) == {"persona", "name", "lang"}
        assert user["attributes"]["name"]
    for persona in PERSONAS:
        assert 1 <= len(persona.categories) <= 3


def test_behaviour_count_and_schema(data: DemoData) -> None:
    assert 6000 <= len(data.behaviours) <= 10000
    for behaviour in data.behaviours:
        assert set(behaviour) == BEHAVIOUR_KEYS
        assert re.fullmatch(r"demo-\d{6}", behaviour["event_id"])
        assert behaviour["kind"] in BEHAVIOUR_KINDS
        assert behaviour["context"]["device"] in {"mobile", "desktop"}
        assert behaviour["context"]["page"]
    kinds = Counter(behaviour["kind"] for behaviour in data.behaviours)
    assert set(kinds) == set(BEHAVIOUR_KINDS)
    assert kinds["view"] > kinds["click"] > kinds["cart"] > kinds["purchase"] > 0


def test_references_exist(data: DemoData, items: dict, users: dict) -> None:
    for behaviour in data.behaviours:
        assert behaviour["user"] in users
        if behaviour["kind"] == "search":
            assert behaviour["item"] is None
            assert behaviour["text"].strip()
        else:
            assert behaviour["item"] in items


def test_values_ratings_and_reviews(data: DemoData, users: dict) -> None:
    for behaviour in data.behaviours:
        if behaviour["kind"] == "rating":
            assert behaviour["value"] in {1.0, 2.0, 3.0, 4.0, 5.0}
        else:
            assert behaviour["value"] is None
        if behaviour["kind"] == "review":
            lang = users[behaviour["user"]]["attributes"]["lang"]
            assert bool(CJK.search(behaviour["text"])) == (lang == "zh"), behaviour["text"]
        elif behaviour["kind"] != "search":
            assert behaviour["text"] == ""


def test_reviews_follow_purchases(data: DemoData) -> None:
    bought: set[tuple[str, str]] = set()
    for behaviour in data.behaviours:  # ordered by time
        key = (behaviour["user"], behaviour["item"])
        if behaviour["kind"] == "purchase":
            bought.add(key)
        elif behaviour["kind"] in {"review", "rating"}:
            assert key in bought


def test_timestamps(data: DemoData) -> None:
    start = NOW - timedelta(days=catalogue.HISTORY_DAYS)
    moments = [datetime.fromisoformat(b["occurred_at"]) for b in data.behaviours]
    assert all(moment.tzinfo is not None for moment in moments)
    assert all(start <= moment < NOW for moment in moments)
    assert moments == sorted(moments)  # event ids follow time
    assert (max(moments) - min(moments)).days >= catalogue.HISTORY_DAYS - 5
    sessions: dict[str, list[datetime]] = defaultdict(list)
    for behaviour, moment in zip(data.behaviours, moments, strict=True):
        sessions[behaviour["context"]["session"]].append(moment)
    for times in sessions.values():
        assert times == sorted(times)
        assert times[-1] - times[0] < timedelta(hours=6)


def test_personas_show_in_behaviour(data: DemoData, items: dict, users: dict) -> None:
    preferred = {persona.slug: set(persona.categories) for persona in PERSONAS}
    total: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    for behaviour in data.behaviours:
        if behaviour["item"] is None:
            continue
        persona = users[behaviour["user"]]["attributes"]["persona"]
        total[persona] += 1
        hits[persona] += items[behaviour["item"]]["category"] in preferred[persona]
    for persona in preferred:
        assert hits[persona] / total[persona] > 0.6, persona
    assert 0.75 < sum(hits.values()) / sum(total.values()) < 0.95


def test_ratings_are_higher_on_the_persona_categories(data: DemoData, items, users) -> None:
    preferred = {persona.slug: set(persona.categories) for persona in PERSONAS}
    stars: dict[bool, list[float]] = {True: [], False: []}
    for behaviour in data.behaviours:
        if behaviour["kind"] == "rating":
            persona = users[behaviour["user"]]["attributes"]["persona"]
            fits = items[behaviour["item"]]["category"] in preferred[persona]
            stars[fits].append(behaviour["value"])
    assert len(stars[True]) >= 30
    assert sum(stars[True]) / len(stars[True]) >= 3.8
    assert len(set(stars[True])) >= 3  # but not all five stars
    if len(stars[False]) >= 10:  # few shoppers buy outside their persona's categories
        assert sum(stars[True]) / len(stars[True]) > sum(stars[False]) / len(stars[False])


def test_searches_in_both_languages(data: DemoData, users: dict) -> None:
    searches = [b for b in data.behaviours if b["kind"] == "search"]
    assert len(searches) >= 100
    by_lang: dict[str, set[str]] = defaultdict(set)
    for search in searches:
        lang = users[search["user"]]["attributes"]["lang"]
        assert bool(CJK.search(search["text"])) == (lang == "zh"), search["text"]
        by_lang[lang].add(search["text"])
    assert len(by_lang["zh"]) >= 10 and len(by_lang["en"]) >= 10
    assert "我最近在找一件外套，性价比高且质量好的" in by_lang["zh"]


def test_write_jsonl(data: DemoData, tmp_path: Path) -> None:
    paths = write_jsonl(data, tmp_path / "demo")
    assert set(paths) == {"items", "users", "behaviours"}
    items = [json.loads(line) for line in paths["items"].read_text("utf-8").splitlines()]
    assert items == data.items
    assert "羽绒服" in paths["items"].read_text("utf-8")  # not \u escaped
    users = paths["users"].read_text("utf-8").splitlines()
    behaviours = paths["behaviours"].read_text("utf-8").splitlines()
    assert len(users) == len(data.users) and len(behaviours) == len(data.behaviours)


def test_module_is_plain_python() -> None:
    tree = ast.parse(Path(catalogue.__file__).read_text("utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert "django" not in imported
    assert "random" in imported  # but only through random.Random(seed)
    assert "random.seed(" not in Path(catalogue.__file__).read_text("utf-8")


BAD_TABLES = {
    "English line": "material 中文。\npoint 中文。\n    Point.",  # a missing translation
    "unknown directive": "material 中文。\n    Material.\nponit 中文。\n    Point.",
    "notes for modifiers": "note 乙: 中文。\n    N.\nmaterial 中文。\n    M.\npoint 中文。\n    P.",
}


@pytest.mark.parametrize("message", sorted(BAD_TABLES))
def test_table_mistakes_are_reported(message: str) -> None:
    table = "category x: 类 = Category\ntype t: 名 = Name\nprice 1-2\ntags a\nslot 甲 = A\n"
    with pytest.raises(catalogue.TableError, match=message):
        catalogue._category(table + BAD_TABLES[message])


def test_tables_ship_as_package_data() -> None:
    tables = resources.files("recommender.demo") / "tables"
    names = [*catalogue.CATEGORY_TABLES, "personas", "reviews"]
    assert {entry.name for entry in tables.iterdir() if entry.name.endswith(".txt")} == {
        f"{name}.txt" for name in names
    }
    # pyproject's package-data must list them, or `pip install .` leaves them behind
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text("utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["recommender"]
    for name in names:
        assert any(fnmatch.fnmatch(f"demo/tables/{name}.txt", pattern) for pattern in patterns)

    texts = {name: (tables / f"{name}.txt").read_text(encoding="utf-8") for name in names}
    for name, text in texts.items():
        assert text.strip() and text.endswith("\n"), name
        assert not {"\r", "\t", "\ufeff"} & set(text), name
    categories = [catalogue._category(texts[name]) for name in catalogue.CATEGORY_TABLES]
    assert [category.slug for category in categories] == [
        name.replace("_", "-") for name in catalogue.CATEGORY_TABLES
    ]
    assert all(category.types for category in categories)
    assert tuple(categories) == catalogue.CATEGORIES
    assert catalogue._personas(texts["personas"]) == PERSONAS and len(PERSONAS) >= 8
    reviews = catalogue._reviews(texts["reviews"])
    assert reviews == catalogue.REVIEWS
    assert set(reviews.bodies) == {
        (category.slug, sentiment) for category in categories for sentiment in ("pos", "mid", "neg")
    }
