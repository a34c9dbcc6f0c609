"""Item translations on the way in: ``limits.check_translations``, the importers'
``title[en]`` / ``description[en]`` / ``translations`` columns and ``--map title[en]=…``,
and migration 0017, which moved the demo's ``attributes.title_en`` into them."""

import importlib
import json
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command

from recommender.ingest import limits
from recommender.ingest.fields import ImportFailed, Row
from recommender.ingest.items import import_items
from recommender.models import Item

migration = importlib.import_module("recommender.migrations.0017_localized_texts")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def import_file(path: Path, *args: str) -> None:
    call_command("import_items", str(path), *args, "--no-progress", "--no-embed")


# --- check_translations -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"en": {}},
        {"en": {"title": "Jacket", "description": ""}},
        {"en-GB": {"title": "x" * 500}, "zh-Hant": {"description": "y" * 20000}},
        {"haw": {"title": "Kapa"}, "es-419": {"title": "Chaqueta"}},
    ],
)
def test_check_translations_accepts(value):
    assert limits.check_translations(value) is value


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ([], "translations"),
        ({"english": {"title": "x"}}, "translations.english"),
        ({"en_GB": {"title": "x"}}, "translations.en_GB"),
        ({"e": {"title": "x"}}, "translations.e"),
        ({"en": ["x"]}, "translations.en"),
        ({"en": {"name": "x"}}, "translations.en.name"),
        ({"en": {"title": "x" * 501}}, "translations.en.title"),
        ({"en": {"title": "   "}}, "translations.en.title"),
        ({"en": {"title": None}}, "translations.en.title"),
        ({"en": {"title": "a\x00b"}}, "translations.en.title"),
        ({"en": {"description": "x" * 20001}}, "translations.en.description"),
        ({"en": {"description": 3}}, "translations.en.description"),
        ({f"a{chr(97 + n // 26)}{chr(97 + n % 26)}": {} for n in range(51)}, "translations"),
    ],
)
def test_check_translations_refuses_naming_the_path(value, path):
    with pytest.raises(limits.InvalidValue) as refused:
        limits.check_translations(value)
    assert refused.value.path == path


# --- Importers ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_bracketed_columns_go_into_translations(tmp_path):
    path = write(
        tmp_path,
        "items.csv",
        "external_id,title,title[en],description[en],title[ja],brand\n"
        "d1,羽绒服,Down jacket,Warm.,ダウン,北岭\n"
        "t1,绿茶,Green tea,,,茗山\n"
        "k1,键盘,,,,键客\n",
    )
    import_file(path)
    items = {item.external_id: item for item in Item.objects.all()}
    assert items["d1"].translations == {
        "en": {"title": "Down jacket", "description": "Warm."},
        "ja": {"title": "ダウン"},
    }
    assert items["t1"].translations == {"en": {"title": "Green tea"}}
    assert items["k1"].translations == {}
    # Other extra columns still become attributes; translations do not.
    assert items["d1"].attributes == {"brand": "北岭"}


@pytest.mark.django_db
def test_map_names_translated_columns(tmp_path):
    path = write(
        tmp_path,
        "items.csv",
        "sku,name,name_en,desc_en,colour\nd1,羽绒服,Down jacket,Hooded.,red\n",
    )
    import_file(
        path,
        "--map", "external_id=sku",
        "--map", "title=name",
        "--map", "title[en]=name_en",
        "--map", "description[en]=desc_en",
    )  # fmt: skip
    item = Item.objects.get()
    assert item.title == "羽绒服"
    assert item.translations == {"en": {"title": "Down jacket", "description": "Hooded."}}
    assert item.attributes == {"colour": "red"}
    assert item.text_in("en") == ("Down jacket", "Hooded.")


@pytest.mark.django_db
def test_a_translations_column_holds_json_and_wins_over_bracketed_columns(tmp_path):
    rows = [
        {
            "external_id": "d1",
            "title": "羽绒服",
            "translations": {"en": {"title": "Down jacket"}, "ja": {"title": "ダウン"}},
            "title[en]": "Ignored",
            "description[en]": "Warm.",
        },
        {
            "external_id": "t1",
            "title": "绿茶",
            "translations": json.dumps({"en": {"title": "Tea"}}),
        },
    ]
    path = write(tmp_path, "items.jsonl", "\n".join(json.dumps(row) for row in rows) + "\n")
    import_file(path)
    items = {item.external_id: item for item in Item.objects.all()}
    assert items["d1"].translations == {
        "en": {"title": "Down jacket", "description": "Warm."},
        "ja": {"title": "ダウン"},
    }
    assert items["t1"].translations == {"en": {"title": "Tea"}}


@pytest.mark.django_db
def test_an_import_without_translation_columns_keeps_them(tmp_path):
    Item.objects.create(external_id="d1", title="羽绒服", translations={"en": {"title": "Jacket"}})
    import_file(write(tmp_path, "items.csv", "external_id,title\nd1,长款羽绒服\n"))
    item = Item.objects.get()
    assert item.title == "长款羽绒服" and item.translations == {"en": {"title": "Jacket"}}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "cells", "message"),
    [
        ("title[english]", "Jacket", "line 2: column 'title[english]': 'english' in brackets"),
        ("title[en]", "x" * 501, "line 2: column 'title[en]': must be at most 500 characters"),
        ("translations", '{"en": {"name": "x"}}', "translations.en.name: unknown key"),
        ("translations", "[1]", "column 'translations': not a JSON object"),
    ],
)
def test_bad_translations_stop_the_import_naming_the_column(tmp_path, header, cells, message):
    path = write(
        tmp_path,
        "items.csv",
        f'external_id,title,{header}\nd1,羽绒服,"{cells.replace(chr(34), chr(34) * 2)}"\n',
    )
    with pytest.raises(CommandError) as refused:
        import_file(path)
    assert message in str(refused.value)
    assert not Item.objects.exists()


@pytest.mark.django_db
def test_a_mapping_to_a_bad_language_code_is_refused():
    with pytest.raises(ImportFailed, match="'english' is not a language code"):
        import_items([Row("r1", {"id": "d1"})], mapping={"title[english]": "name_en"})
    with pytest.raises(ImportFailed, match=r"unknown field 'name'.*title\[LANG\]"):
        import_items([Row("r1", {"id": "d1"})], mapping={"name": "title"})


# --- Migration 0017 -----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_migration_moves_english_attributes_into_translations_and_back(monkeypatch):
    monkeypatch.setattr(migration, "BATCH", 2)  # several batches
    demo = {
        f"d{n}": {"title_en": f"Jacket {n}", "description_en": f"Warm {n}.", "price": n}
        for n in range(5)
    }
    for external_id, attributes in demo.items():
        Item.objects.create(external_id=external_id, title="羽绒服", attributes=attributes)
    Item.objects.create(external_id="plain", title="绿茶", attributes={"price": 1})
    Item.objects.create(
        external_id="odd", title="茶", attributes={"title_en": 5, "description_en": "Tea."}
    )
    hashes = dict(Item.objects.values_list("external_id", "text_hash"))

    migration.attributes_to_translations(apps, None)
    items = {item.external_id: item for item in Item.objects.all()}
    for n in range(5):
        assert items[f"d{n}"].attributes == {"price": n}
        assert items[f"d{n}"].translations == {
            "en": {"title": f"Jacket {n}", "description": f"Warm {n}."}
        }
        assert items[f"d{n}"].text_hash != hashes[f"d{n}"]  # vectors of such items refresh
    assert items["plain"].translations == {} and items["plain"].text_hash == hashes["plain"]
    # A value that cannot be a translation stays an attribute.
    assert items["odd"].attributes == {"title_en": 5}
    assert items["odd"].translations == {"en": {"description": "Tea."}}

    migration.translations_to_attributes(apps, None)
    items = {item.external_id: item for item in Item.objects.all()}
    for external_id, attributes in demo.items():
        assert items[external_id].attributes == attributes
        assert items[external_id].translations == {}
        assert items[external_id].text_hash == hashes[external_id]
    assert items["odd"].attributes == {"title_en": 5, "description_en": "Tea."}
