"""Recommendation copy that reads as if a shop wrote it, and the checker that says so
(issue 18, items 4 and 5): feature phrases from whole clauses, one script per language,
negations kept whole, several templates, and ``copycheck`` over the demo shop."""

import re
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from recommender.demo.catalogue import generate
from recommender.ingest.movielens import movielens_items
from recommender.models import Item
from recommender.serving import copycheck, explain
from recommender.serving.candidates import explain_text
from recommender.serving.copycheck import FINDING_KINDS, check, check_catalogue, check_list
from recommender.serving.explain import (
    BLURB_MAX_CHARS,
    REASON_KINDS,
    Evidence,
    ItemText,
    Reason,
    blurb,
    display_title,
)

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
HAN = re.compile("[\u3400-\u9fff]")
# A Latin token; in Chinese copy only a model-number-like one may appear ("Type-C", "165Hz").
LATIN_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9/.-]*")
# "(12.4, 2.5, high)": a bracketed list of loose words, the old English blurbs' tail.
DEBRIS = re.compile(r"\([^()]*,[^()]*\)")
TRENCH = ItemText(
    title="女士双排扣风衣",
    description="经典双排扣版型，面料挺括不易起皱。防泼水面料，小雨天也能穿。trench coat 经典款。",
    attributes={"brand": "Nordpeak", "price": 439},
    translations={
        "en": {
            "title": "Women's Double-Breasted Trench Coat",
            "description": "A classic double-breasted cut. Crisp fabric that does not "
            "wrinkle easily. Water-repellent, so light rain is no problem.",
        }
    },
)


def item_text(row: dict) -> ItemText:
    return ItemText(
        title=row["title"],
        category=row.get("category", ""),
        tags=tuple(row.get("tags") or ()),
        description=row.get("description", ""),
        attributes=row.get("attributes") or {},
        translations=row.get("translations") or {},
    )


@pytest.fixture(scope="module")
def demo_items() -> list[tuple[str, ItemText]]:
    return [(row["external_id"], item_text(row)) for row in generate(now=NOW).items]


@pytest.fixture(scope="module")
def demo_report(demo_items) -> copycheck.CatalogueReport:
    return check_catalogue(demo_items)


def blurbs_of(report, lang: str) -> list[str]:
    return [text for where, text in report.texts if where.endswith(f" {lang}")]


# --- the demo shop ---------------------------------------------------------------------


def test_demo_catalogue_copy_has_no_findings(demo_items, demo_report):
    assert demo_report.items == len(demo_items) >= 320
    assert demo_report.blurbs == len(demo_items) * len(REASON_KINDS) * 2
    assert [str(f) for f in demo_report.findings[:10]] == []


def test_english_blurbs_carry_no_keyword_debris(demo_report):
    english = blurbs_of(demo_report, "en")
    assert english and not [text for text in english if DEBRIS.search(text)]


def test_wrinkling_is_never_praised(demo_items, demo_report):
    creaseless = {key for key, item in demo_items if "不易起皱" in item.description}
    assert creaseless, "the demo shop has items that do not wrinkle"
    texts = [t for where, t in demo_report.texts if where.split()[0] in creaseless]
    assert texts
    for text in texts:
        assert "起皱" not in text.replace("不易起皱", "")
    # And for one built for it: the Chinese copy says 不易起皱 whole or not at all.
    zh = blurb(TRENCH, Reason("popular", "热门商品"), "zh")
    assert "起皱" not in zh.replace("不易起皱", "")
    assert not check(zh, "zh", brand="Nordpeak", source=TRENCH.description)


def test_chinese_blurbs_have_no_english_words_but_brands(demo_items, demo_report):
    position = {key: i for i, (key, _) in enumerate(demo_items)}
    for where, text in demo_report.texts:
        key, _, lang = where.split()
        if lang != "zh":
            continue
        i = position[key]
        item, anchor = demo_items[i][1], demo_items[(i + 1) % len(demo_items)][1]
        # What may be Latin: the brand and the titles the copy quotes ("《Python编程…》").
        for name in (item.attributes["brand"], item.title, anchor.title):
            text = text.replace(name, "")
        words = {w for w in LATIN_WORD.findall(text) if any(c.isalpha() for c in w)}
        assert not {w.lower() for w in words} & {"jacket", "trench", "coat", "down"}, text
        # Only model numbers, units and acronyms are left: "Type-C", "165Hz", "IPS".
        assert all(
            w.isupper() or w[0].isdigit() or any(c.isupper() or c.isdigit() for c in w[1:])
            for w in words
        ), text
    zh = blurb(TRENCH, Reason("popular", "热门商品"), "zh")
    assert "trench" not in zh and "coat" not in zh and "Nordpeak" in zh


def test_english_blurbs_have_no_chinese(demo_report):
    # The demo's brands are Latin: an English blurb has no Chinese at all.
    assert not [text for text in blurbs_of(demo_report, "en") if HAN.search(text)]


def test_a_list_does_not_repeat_one_sentence(demo_items):
    for lang in ("zh", "en"):
        page = demo_items[:10]
        texts = [
            blurb(item, explain.explain(item, Evidence("popular"), lang), lang) for _, item in page
        ]
        # Beyond the item's own words: the closing phrase and the frame vary per item.
        endings = {re.sub(r"^.*[，,:：]", "", text) for text in texts}
        assert len(endings) >= 2, texts
        assert len(set(texts)) == len(texts)


def test_blurbs_are_deterministic_per_item(demo_items):
    _, item = demo_items[7]
    reason = explain.explain(item, Evidence("trending"), "en")
    assert len({blurb(item, reason, "en") for _ in range(3)}) == 1


# --- feature phrases -------------------------------------------------------------------


def test_features_are_whole_clauses_of_the_description():
    zh = blurb(TRENCH, Reason("new", "新品上架"), "zh")
    clauses = {"经典双排扣版型", "面料挺括不易起皱", "防泼水面料", "小雨天也能穿"}
    assert any(clause in zh for clause in clauses), zh
    en = blurb(TRENCH, Reason("new", "New arrival"), "en")
    assert "Women's Double-Breasted Trench Coat" in en
    assert any(
        phrase in en
        for phrase in (
            "a classic double-breasted cut",
            "crisp fabric that does not wrinkle easily",
            "water-repellent",
        )
    ), en
    assert not check(en, "en", brand="Nordpeak", source=TRENCH.translations["en"]["description"])


def test_a_clause_with_a_dangling_negation_is_skipped():
    item = ItemText(title="保温杯", description="保温效果好，不。密封圈无")
    text = blurb(item, Reason("new", "新品上架"), "zh")
    assert "不" not in text and "无" not in text
    assert "保温效果好" in text


def test_english_copy_skips_comma_lists_and_boilerplate():
    item = ItemText(
        title="Toy Story (1995)",
        description="Toy Story (1995). Genres: Adventure, Animation, Children, Comedy. "
        "Genuine product with returns within 7 days.",
    )
    text = blurb(item, Reason("popular", "Popular right now"), "en")
    assert "Adventure" not in text and "returns" not in text
    assert not check(text, "en", names=["Toy Story (1995)"])


def test_short_text_attributes_are_feature_phrases():
    item = ItemText(title="衬衫", attributes={"material": "100%新疆长绒棉", "material_en": "x"})
    assert "100%新疆长绒棉" in blurb(item, Reason("new", "新品上架"), "zh")
    english = ItemText(title="Shirt", attributes={"material_en": "long-staple Xinjiang cotton"})
    assert "long-staple Xinjiang cotton" in blurb(english, Reason("new", "New arrival"), "en")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_blurbs_fit_the_length_limit_with_long_clauses(lang):
    item = ItemText(
        title="超长标题" * 10,
        description="，".join(["这是一个相当长但仍然完整的卖点描述"] * 6),
        attributes={"brand": "A Very Long Brand Name Company Limited", "price": "1299.50"},
        translations={"en": {"title": "Long title " * 10, "description": "Fine words. " * 20}},
    )
    for kind in REASON_KINDS:
        text = blurb(item, explain.explain(item, Evidence(kind), lang), lang)
        assert len(text) <= BLURB_MAX_CHARS[lang]


# --- translations ----------------------------------------------------------------------


def test_display_title_reads_translations_then_attributes_then_title():
    both = ItemText(
        title="羽绒服",
        attributes={"title_en": "Old Down Jacket"},
        translations={"en": {"title": "Down Jacket"}},
    )
    assert display_title(both, "en") == "Down Jacket"
    assert display_title(both, "zh") == "羽绒服"
    old = ItemText(title="羽绒服", attributes={"title_en": "Old Down Jacket"})
    assert display_title(old, "en") == "Old Down Jacket"
    empty = ItemText(title="羽绒服", translations={"en": {"title": " "}})
    assert display_title(empty, "en") == "羽绒服"
    odd = ItemText(title="羽绒服", translations={"en": "not a mapping"})
    assert display_title(odd, "en") == "羽绒服"


def test_english_copy_reads_the_translated_description():
    item = ItemText(
        title="保温杯",
        description="杯盖密封不漏水。",
        translations={
            "en": {"title": "Insulated Tumbler", "description": "Keeps tea hot all day."}
        },
    )
    text = blurb(item, Reason("new", "New arrival"), "en")
    assert "Insulated Tumbler" in text and "keeps tea hot all day" in text
    assert not HAN.search(text)


# --- the checker, finding by finding -----------------------------------------------------


def kinds(findings) -> set[str]:
    return {f.kind for f in findings}


def test_clean_copy_has_no_findings():
    assert (
        check("这款Nordpeak 女士风衣（¥439）：面料挺括不易起皱，刚刚上架。", "zh", brand="Nordpeak")
        == []
    )
    assert check("Trench Coat from Nordpeak at ¥439: does not wrinkle — just arrived.", "en") == []


def test_mixed_script_in_chinese_copy():
    found = check("这款风衣主打起皱、trench、coat，刚刚上架。", "zh")
    assert [f.detail for f in found if f.kind == "mixed_script"] == ["trench", "coat"]
    # A brand, a quoted name and model numbers are not debris.
    assert not check(
        "这款Nordpeak 显示器采用IPS面板、Type-C接口，750ml，刚刚上架。", "zh", brand="Nordpeak"
    )
    assert not check("这款Toy Story (1995)，刚刚上架。", "zh", names=["Toy Story (1995)"])
    # A name clipped by the copy ("Linshu Editi…") is still that name.
    assert not check("这款Linshu Editi…时间的褶皱，刚刚上架。", "zh", brand="Linshu Editions")


def test_mixed_script_in_english_copy():
    assert kinds(check("Down Jacket (十度, down), just arrived.", "en")) >= {"mixed_script"}
    assert not check("Down Jacket from 北岭, just arrived.", "en", brand="北岭")
    assert not check('Close to your search "羽绒服".', "en", names=["羽绒服"])


def test_dangling_negation():
    assert "dangling_negation" in kinds(check("这款枕头主打不易、枕芯，刚刚上架。", "zh"))
    assert "dangling_negation" in kinds(check("A shirt that is non-, just arrived.", "en"))
    assert "dangling_negation" in kinds(check("Saw it without and loved it.", "en"))
    assert "dangling_negation" not in kinds(check("这款枕头不易变形，刚刚上架。", "zh"))


def test_lost_negation():
    source = "面料挺括，不易起皱。"
    assert "lost_negation" in kinds(check("这款风衣主打起皱，刚刚上架。", "zh", source=source))
    assert not check("这款风衣面料挺括不易起皱，刚刚上架。", "zh", source=source)
    en_source = "Ball-bearing handles spin without tangling."
    assert "lost_negation" in kinds(check("A rope (tangling), new.", "en", source=en_source))
    assert not check("A rope that spins without tangling, new.", "en", source=en_source)
    # A word the source also says plainly is the item's own.
    both = "不易起皱。起皱测试通过。"
    assert "lost_negation" not in kinds(check("这款风衣起皱测试通过，新品。", "zh", source=both))


def test_empty_phrases():
    for text in (
        "这款《》，刚刚上架。",
        "这款风衣主打、、面料，新品。",
        "这款风衣主打，新品。",
        "Coat, , new.",
    ):
        assert "empty_phrase" in kinds(check(text, "zh" if "这" in text else "en")), text
    assert kinds(check("", "zh")) == {"empty_phrase"}
    assert kinds(check("。", "zh")) == {"empty_phrase"}


def test_repeated_phrases():
    assert "repeated_phrase" in kinds(check("这款风衣，不易起皱，不易起皱，新品。", "zh"))
    assert "repeated_phrase" in kinds(check("A coat that is warm warm, new.", "en"))
    # Names may repeat: two titles that share a year are not a repeated phrase.
    names = ["Heat (1995)", "Casino (1995)"]
    assert not check('Heat (1995), in the style of "Casino (1995)" you viewed.', "en", names=names)


def test_keyword_debris():
    found = check("Down Jacket at ¥899 (12.4, 2.5, high), just arrived.", "en")
    assert "keyword_debris" in kinds(found)
    assert "keyword_debris" in kinds(check("Tumbler (double, shot), new.", "en"))
    assert "keyword_debris" not in kinds(check("Toy Story (1995), new.", "en"))


def test_too_long():
    assert "too_long" in kinds(check("这款" + "好" * 90 + "。", "zh"))
    assert "too_long" not in kinds(check("这款" + "好" * 70 + "。", "zh"))
    assert "too_long" in kinds(check("Fine words " * 20 + ".", "en"))
    assert "too_long" in kinds(check("Short.", "en", max_chars=3))


def test_repeated_blurb_in_a_list():
    found = check_list([("a", "Same."), ("b", "Same."), ("c", "Other.")])
    assert [(f.kind, f.text) for f in found] == [("repeated_blurb", "Same.")]
    assert check_list([("a", "Same."), ("a", "Same.")]) == []


def test_every_finding_kind_is_tested():
    # Each kind above has its own test: a new kind needs one too.
    assert set(FINDING_KINDS) == {
        "mixed_script",
        "dangling_negation",
        "lost_negation",
        "empty_phrase",
        "repeated_phrase",
        "keyword_debris",
        "too_long",
        "repeated_blurb",
    }


# --- MovieLens-style items (an English-only catalogue) ---------------------------------


def test_movielens_items_have_clean_copy(tmp_path):
    (tmp_path / "movies.csv").write_text(
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
        "2,Jumanji (1995),Adventure|Children|Fantasy\n"
        "3,Man of No Importance (1994),Drama\n"
        "4,Tomorrow Never Dies (1997),Action|Adventure|Thriller\n"
        '5,"Nightmare on Elm Street 3: Dream Warriors, A (1987)",Horror|Thriller\n'
        '6,"Nightmare on Elm Street 4: The Dream Master, A (1988)",Horror|Thriller\n'
        "7,Meet the Robinsons (2007),Action|Adventure|Animation|Children|Comedy\n",
        encoding="utf-8",
    )
    (tmp_path / "tags.csv").write_text(
        "userId,movieId,tag,timestamp\n"
        "1,1,pixar,1\n1,1,fun,1\n"
        "2,7,saw it without and plan on seeing it with kids,1\n"
        "2,7,something for everyone in this one,1\n",
        encoding="utf-8",
    )
    items = [(r.values["external_id"], item_text(r.values)) for r in movielens_items(tmp_path)]
    report = check_catalogue(items)
    assert report.blurbs == 7 * len(REASON_KINDS) * 2
    assert [str(f) for f in report.findings] == []


# --- the command -----------------------------------------------------------------------


@pytest.fixture
def stored_demo(db, demo_items):
    rows = generate(now=NOW).items[::30]
    Item.objects.bulk_create(
        Item(
            external_id=row["external_id"],
            title=row["title"],
            description=row["description"],
            category=row["category"],
            tags=row["tags"],
            attributes=row["attributes"],
            translations=row.get("translations") or {},
        )
        for row in rows
    )
    return rows


def test_explain_text_reads_translations(stored_demo):
    item = Item.objects.get(external_id=stored_demo[0]["external_id"])
    assert explain_text(item).translations == stored_demo[0].get("translations", {})
    assert display_title(explain_text(item), "en") != item.title


def test_check_copy_command_passes_on_the_demo_shop(stored_demo, capsys):
    call_command("check_copy")
    out = capsys.readouterr().out
    kinds_count = len(REASON_KINDS)
    assert f"{len(stored_demo)} items, {len(stored_demo) * kinds_count * 2} blurbs" in out
    assert out.rstrip().endswith("0 findings")
    call_command("check_copy", "--sample", "3", "--lang", "en")
    assert f"3 items, {3 * kinds_count} blurbs" in capsys.readouterr().out


def test_check_copy_command_fails_on_findings(stored_demo, capsys, monkeypatch):
    monkeypatch.setattr(explain, "blurb", lambda item, reason, lang: "Coat (double, shot).")
    with pytest.raises(CommandError) as failed:
        call_command("check_copy", "--sample", "2", "--show", "1")
    assert failed.value.returncode == 1
    out = capsys.readouterr().out
    assert "keyword_debris" in out and "more" in out
