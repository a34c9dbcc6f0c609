"""The item and behaviour importers: happy paths, presets, and bad input that writes nothing."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from recommender.ingest.behaviours import import_behaviours
from recommender.ingest.fields import ImportFailed
from recommender.ingest.files import read_rows
from recommender.ingest.items import import_items
from recommender.models import Behaviour, EndUser, Item

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def snapshot() -> tuple:
    return (
        sorted(Item.objects.values_list("external_id", "title", "is_active")),
        sorted(EndUser.objects.values_list("external_id", flat=True)),
        Behaviour.objects.count(),
    )


@pytest.fixture
def catalogue(tmp_path):
    path = write(
        tmp_path,
        "items.csv",
        "sku,name,category,tags,price,brand\n"
        "d1,女士加长款保暖羽绒服,clothing,羽绒服|保暖,899,北岭\n"
        "k1,机械键盘青轴,electronics,键盘|青轴,299.5,键客\n"
        "t1,有机绿茶礼盒,food,,168,茗山\n",
    )
    call_command(
        "import_items",
        str(path),
        "--map",
        "external_id=sku",
        "--map",
        "title=name",
        "--no-progress",
    )
    return path


def test_items_import_with_column_mapping_and_attributes(catalogue):
    jacket = Item.objects.get(external_id="d1")
    assert jacket.title == "女士加长款保暖羽绒服"
    assert jacket.category == "clothing"
    assert jacket.tags == ["羽绒服", "保暖"]
    assert jacket.attributes == {"price": 899, "brand": "北岭"}
    assert Item.objects.get(external_id="k1").attributes["price"] == 299.5


def test_items_upsert_by_external_id(tmp_path, catalogue):
    path = write(
        tmp_path,
        "more.jsonl",
        json.dumps(
            {"external_id": "d1", "title": "女士长款羽绒服 2026", "is_active": False},
            ensure_ascii=False,
        )
        + "\n"
        + json.dumps({"external_id": "n1", "title": "Wireless earbuds", "tags": ["audio"]})
        + "\n",
    )
    report = import_items(read_rows(path))
    assert (report.created, report.updated) == (1, 1)
    jacket = Item.objects.get(external_id="d1")
    assert jacket.title == "女士长款羽绒服 2026" and not jacket.is_active
    assert Item.objects.count() == 4


def test_malformed_csv_row_stops_the_import_and_writes_nothing(tmp_path, catalogue):
    before = snapshot()
    path = write(tmp_path, "bad.csv", "external_id,title\nz1,Fine\nz2,Too,many\nz3,Never\n")
    with pytest.raises(CommandError) as error:
        call_command("import_items", str(path), "--no-progress")
    assert str(error.value) == "line 3: 3 values but the header has 2 (nothing was written)"
    assert snapshot() == before


def test_missing_title_names_the_line_and_column(tmp_path):
    path = write(tmp_path, "items.csv", "external_id,title\na,Alpha\nb,\n")
    with pytest.raises(ImportFailed, match=r"^line 3: column 'title': is required$"):
        import_items(read_rows(path))
    assert Item.objects.count() == 0


def test_non_utf8_file_gives_one_line_and_writes_nothing(tmp_path, catalogue):
    before = snapshot()
    path = write(tmp_path, "gbk.csv", b"external_id,title\n" + "x1,羽绒服\n".encode("gbk"))
    with pytest.raises(CommandError, match=r"^line 2: not valid UTF-8 \(byte 0x"):
        call_command("import_items", str(path), "--no-progress")
    assert snapshot() == before


def test_dry_run_validates_without_writing(tmp_path):
    path = write(tmp_path, "items.csv", "external_id,title\na,Alpha\n")
    report = import_items(read_rows(path), dry_run=True)
    assert report.rows == 1 and report.dry_run
    assert Item.objects.count() == 0


def behaviours_csv(tmp_path, body: str) -> Path:
    return write(tmp_path, "events.csv", "event_id,user,item,kind,value,text,timestamp\n" + body)


def test_behaviours_import_creates_users_on_the_fly(tmp_path, catalogue):
    path = behaviours_csv(
        tmp_path,
        "e1,u1,d1,view,,,1700000000\n"
        "e2,u1,,search,,我最近在找一件外套，性价比高且质量好的,2023-11-15T10:00:00+08:00\n"
        "e3,u2,k1,rating,4.5,,1700000100\n",
    )
    call_command("import_behaviours", str(path), "--map", "occurred_at=timestamp", "--no-progress")
    assert set(EndUser.objects.values_list("external_id", flat=True)) == {"u1", "u2"}
    search = Behaviour.objects.get(event_id="e2")
    assert search.item is None and search.text.startswith("我最近在找一件外套")
    assert search.occurred_at.isoformat() == "2023-11-15T02:00:00+00:00"
    assert Behaviour.objects.get(event_id="e3").value == 4.5


def test_bad_date_message_names_line_column_and_value(tmp_path, catalogue):
    before = snapshot()
    path = behaviours_csv(tmp_path, "e1,u1,d1,view,,,1700000000\ne2,u1,d1,view,,,2023-13-45\n")
    with pytest.raises(CommandError) as error:
        call_command(
            "import_behaviours", str(path), "--map", "occurred_at=timestamp", "--no-progress"
        )
    assert str(error.value) == (
        "line 3: column 'timestamp': not a date: '2023-13-45' (nothing was written)"
    )
    assert snapshot() == before


def test_unknown_item_reference_writes_nothing(tmp_path, catalogue):
    before = snapshot()
    path = behaviours_csv(tmp_path, "e1,u9,d1,view,,,1700000000\ne2,u9,nope,cart,,,1700000001\n")
    with pytest.raises(ImportFailed, match=r"^line 3: column 'item': unknown item 'nope'$"):
        import_behaviours(read_rows(path), mapping={"occurred_at": "timestamp"})
    assert snapshot() == before
    assert not EndUser.objects.filter(external_id="u9").exists()


def test_duplicate_event_id_in_the_file_writes_nothing(tmp_path, catalogue):
    before = snapshot()
    path = behaviours_csv(tmp_path, "e1,u1,d1,view,,,1700000000\ne1,u1,k1,view,,,1700000001\n")
    with pytest.raises(ImportFailed, match=r"^line 3: column 'event_id': duplicate of line 2"):
        import_behaviours(read_rows(path), mapping={"occurred_at": "timestamp"})
    assert snapshot() == before


def test_already_stored_event_id_fails_or_is_skipped(tmp_path, catalogue):
    first = behaviours_csv(tmp_path, "e1,u1,d1,view,,,1700000000\n")
    import_behaviours(read_rows(first), mapping={"occurred_at": "timestamp"})
    again = write(tmp_path, "again.csv", "event_id,user,item,kind\ne1,u1,d1,view\ne2,u1,k1,cart\n")
    with pytest.raises(ImportFailed, match="already stored"):
        import_behaviours(read_rows(again))
    assert Behaviour.objects.count() == 1
    report = import_behaviours(read_rows(again), skip_existing=True)
    assert report.rows == 1 and report.extra["skipped_existing"] == 1
    assert sorted(Behaviour.objects.values_list("event_id", flat=True)) == ["e1", "e2"]


def test_event_ids_are_per_user(tmp_path, catalogue):
    first = behaviours_csv(tmp_path, "e1,u1,d1,view,,,1700000000\ne1,u2,d1,view,,,1700000000\n")
    assert import_behaviours(read_rows(first), mapping={"occurred_at": "timestamp"}).rows == 2
    again = write(tmp_path, "again.csv", "event_id,user,item,kind\ne1,u1,d1,view\ne1,u3,k1,cart\n")
    with pytest.raises(ImportFailed, match="^line 2: column 'event_id': event 'e1' of user 'u1'"):
        import_behaviours(read_rows(again))
    report = import_behaviours(read_rows(again), skip_existing=True)
    assert report.rows == 1 and report.extra["skipped_existing"] == 1
    assert sorted(Behaviour.objects.values_list("user__external_id", "event_id")) == [
        ("u1", "e1"),
        ("u2", "e1"),
        ("u3", "e1"),
    ]


def test_unknown_kind_lists_the_allowed_kinds(tmp_path, catalogue):
    path = write(tmp_path, "e.jsonl", json.dumps({"user": "u1", "item": "d1", "kind": "poke"}))
    with pytest.raises(ImportFailed, match=r"^line 1: column 'kind': not a behaviour kind: 'poke'"):
        import_behaviours(read_rows(path))


def test_movielens_preset_reads_the_grouplens_layout(tmp_path):
    folder = tmp_path / "ml"
    folder.mkdir()
    write(
        folder,
        "movies.csv",
        "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation|Children\n"
        '2,"Heat, The (1995)",Action|Crime\n',
    )
    write(
        folder,
        "ratings.csv",
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n"
        "1,2,3.5,964982224\n2,1,5.0,964983815\n",
    )
    write(folder, "tags.csv", "userId,movieId,tag,timestamp\n2,1,pixar,1445714994\n")
    call_command("import_items", str(folder), "--preset", "movielens", "--no-progress")
    call_command("import_behaviours", str(folder), "--preset", "movielens", "--no-progress")
    toy = Item.objects.get(external_id="1")
    assert toy.category == "Adventure"
    assert toy.tags == ["Adventure", "Animation", "Children", "pixar"]
    assert "pixar" in toy.description and toy.attributes["year"] == 1995
    assert Item.objects.get(external_id="2").title == "Heat, The (1995)"
    assert Behaviour.objects.filter(kind="rating").count() == 3
    review = Behaviour.objects.get(kind="review")
    assert review.text == "pixar" and review.user.external_id == "2"
    # Stable event ids make a second import detectable rather than doubled.
    with pytest.raises(CommandError, match="already stored"):
        call_command("import_behaviours", str(folder), "--preset", "movielens", "--no-progress")
    assert Behaviour.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_command_exits_1_with_one_readable_line(tmp_path):
    from django.db import connection

    path = write(tmp_path, "bad.csv", "external_id,title\na,\n")
    result = subprocess.run(
        [sys.executable, "manage.py", "import_items", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "PATH": "/usr/bin:/bin",
            "RECSITE_DATABASE_NAME": connection.settings_dict["NAME"],
        },
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["CommandError: line 2: column 'title': is required (nothing was written)"]
