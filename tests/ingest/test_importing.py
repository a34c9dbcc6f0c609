"""The item and behaviour importers: happy paths, presets, and bad input that writes nothing."""

import json
import subprocess
import sys
import uuid
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


# --- the online loop's columns: recommendation_id, position, impressions ---------------------

LIST_A = "c707cd0f-5d0e-4c4b-9a55-3f1e2d0c9b11"
LIST_B = "0f6b1e2a9c3d4e5f8a7b6c5d4e3f2a1b"  # the hex form the API answers with


def list_csv(tmp_path: Path, body: str) -> Path:
    return write(tmp_path, "online.csv", "event_id,user,item,kind,timestamp,list,position\n" + body)


def import_list_csv(path: Path) -> None:
    call_command(
        "import_behaviours",
        str(path),
        "--map",
        "occurred_at=timestamp",
        "--map",
        "recommendation_id=list",
        "--no-progress",
    )


def test_impressions_with_recommendation_id_and_position_are_imported(tmp_path, catalogue):
    path = list_csv(
        tmp_path,
        f"e1,u1,d1,impression,1700000000,{LIST_A},1\n"
        f"e2,u1,k1,impression,1700000000,{LIST_A},2\n"
        f"e3,u1,k1,click,1700000010, {LIST_A.upper()} ,2.0\n"
        f"e4,u2,t1,impression,1700000020,{LIST_B},\n"
        "e5,u2,t1,purchase,1700000030,,\n",
    )
    import_list_csv(path)
    stored = {
        b.event_id: (
            b.user.external_id,
            b.item.external_id,
            b.kind,
            b.recommendation_id,
            b.position,
        )
        for b in Behaviour.objects.select_related("user", "item")
    }
    assert stored == {
        "e1": ("u1", "d1", "impression", uuid.UUID(LIST_A), 1),
        "e2": ("u1", "k1", "impression", uuid.UUID(LIST_A), 2),
        "e3": ("u1", "k1", "click", uuid.UUID(LIST_A), 2),
        "e4": ("u2", "t1", "impression", uuid.UUID(LIST_B), None),
        "e5": ("u2", "t1", "purchase", None, None),
    }


def test_jsonl_takes_the_columns_by_their_own_names(tmp_path, catalogue):
    lines = [
        {"user": "u1", "item": "d1", "kind": "impression", "recommendation_id": LIST_B},
        {"user": "u1", "item": "d1", "kind": "click", "recommendation_id": LIST_B, "position": 3},
        {"user": "u1", "item": "k1", "kind": "view", "recommendation_id": None, "position": None},
    ]
    path = write(tmp_path, "e.jsonl", "\n".join(json.dumps(line) for line in lines))
    assert import_behaviours(read_rows(path)).rows == 3
    assert sorted(
        Behaviour.objects.values_list("kind", "recommendation_id", "position"), key=str
    ) == sorted(
        [
            ("impression", uuid.UUID(LIST_B), None),
            ("click", uuid.UUID(LIST_B), 3),
            ("view", None, None),
        ],
        key=str,
    )


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        (
            "e2,u1,k1,click,1700000001,not-a-uuid,1",
            "line 3: column 'list': not a UUID: 'not-a-uuid'",
        ),
        (
            f"e2,u1,k1,click,1700000001,{LIST_A[:-1]},1",
            f"line 3: column 'list': not a UUID: '{LIST_A[:-1]}'",
        ),
        (
            f"e2,u1,k1,click,1700000001,{LIST_A},-1",
            "line 3: column 'position': -1: must lie between 1 and 200 "
            "(the item's 1-based position in its list)",
        ),
        (
            f"e2,u1,k1,click,1700000001,{LIST_A},0",
            "line 3: column 'position': 0: must lie between 1 and 200 "
            "(the item's 1-based position in its list)",
        ),
        (
            f"e2,u1,k1,click,1700000001,{LIST_A},1.5",
            "line 3: column 'position': not a whole number: '1.5' "
            "(the item's 1-based position in its list)",
        ),
        (
            "e2,u1,k1,impression,1700000001,,",
            "line 3: column 'list': an impression names the list it was shown in",
        ),
        (
            "e2,u1,k1,click,1700000001,,4",
            "line 3: column 'position': a position is within a list: give its recommendation_id",
        ),
    ],
)
def test_bad_list_columns_name_the_row_and_write_nothing(tmp_path, catalogue, bad_row, message):
    good = f"e1,u1,d1,impression,1700000000,{LIST_A},1\n"
    later = f"e3,u2,t1,click,1700000002,{LIST_A},3\n"
    before = snapshot()
    with pytest.raises(CommandError) as error:
        import_list_csv(list_csv(tmp_path, good + bad_row + "\n" + later))
    assert str(error.value) == f"{message} (nothing was written)"
    assert snapshot() == before  # all or nothing, as for any other bad cell
    # Without the bad row, the good rows import.
    import_list_csv(list_csv(tmp_path, good + later))
    assert sorted(Behaviour.objects.values_list("event_id", "position")) == [("e1", 1), ("e3", 3)]


def test_dry_run_checks_the_list_columns(tmp_path, catalogue):
    path = list_csv(tmp_path, "e1,u1,d1,click,1700000000,xyz,1\n")
    with pytest.raises(ImportFailed, match=r"^line 2: column 'list': not a UUID: 'xyz'$"):
        import_behaviours(
            read_rows(path),
            mapping={"occurred_at": "timestamp", "recommendation_id": "list"},
            dry_run=True,
        )


def test_import_without_the_list_columns_is_unchanged(tmp_path, catalogue):
    path = behaviours_csv(tmp_path, "e1,u1,d1,view,,,1700000000\ne2,u2,k1,rating,4,,1700000001\n")
    report = import_behaviours(read_rows(path), mapping={"occurred_at": "timestamp"})
    assert (report.rows, report.users_created) == (2, 2)
    assert sorted(Behaviour.objects.values_list("event_id", "recommendation_id", "position")) == [
        ("e1", None, None),
        ("e2", None, None),
    ]
    # An impression still needs its list, with or without the column in the file.
    path = behaviours_csv(tmp_path, "e3,u1,d1,impression,,,1700000002\n")
    with pytest.raises(ImportFailed, match="^line 2: column 'recommendation_id': an impression"):
        import_behaviours(read_rows(path), mapping={"occurred_at": "timestamp"})
    assert Behaviour.objects.count() == 2


def test_kind_option_accepts_impressions(tmp_path, catalogue):
    path = write(tmp_path, "shown.csv", f"user,item,recommendation_id,position\nu1,d1,{LIST_A},1\n")
    call_command("import_behaviours", str(path), "--kind", "impression", "--no-progress")
    shown = Behaviour.objects.get()
    assert (shown.kind, shown.recommendation_id, shown.position) == (
        "impression",
        uuid.UUID(LIST_A),
        1,
    )


def test_imported_impressions_move_no_profile(tmp_path, catalogue, hashing_space):
    from recommender.serving import profiles

    path = list_csv(
        tmp_path,
        f"e1,u1,d1,impression,1700000000,{LIST_A},1\n"
        f"e2,u1,k1,impression,1700000100,{LIST_A},2\n"
        "e3,u1,k1,view,1700000050,,\n"
        f"e4,u2,d1,impression,1700000000,{LIST_A},1\n",
    )
    import_list_csv(path)
    users = dict(EndUser.objects.values_list("external_id", "pk"))
    states = profiles.recompute_many(users.values(), hashing_space)
    assert states[users["u1"]].events == 1  # the view only
    assert states[users["u1"]].ref_time == Behaviour.objects.get(event_id="e3").occurred_at
    assert states[users["u2"]].events == 0 and states[users["u2"]].ref_time is None


def test_imported_events_are_attributed_like_live_ones(tmp_path, catalogue):
    from django.utils import timezone

    from recommender.models import ServedList
    from recommender.serving import attribution

    viewer = EndUser.objects.create(external_id="u1")
    entry = {"item": Item.objects.get(external_id="k1").pk, "position": 2, "sources": ["nearest"]}
    served = ServedList.objects.create(
        id=uuid.UUID(LIST_A), user=viewer, endpoint="recommendations", scenario="home",
        items=[entry], served_at=timezone.now(),
    )  # fmt: skip
    path = list_csv(
        tmp_path,
        f"e1,u1,k1,click,1700000000,{LIST_A},\n"  # the position is read from the list
        f"e2,u1,d1,click,1700000000,{LIST_B},1\n",  # a list this site never logged
    )
    import_list_csv(path)
    found = attribution.attribute(Behaviour.objects.get(event_id="e1"))
    assert found is not None and found.recommendation_id == served.id.hex
    assert (found.position, found.sources, found.via) == (2, ("nearest",), "id")
    assert attribution.attribute(Behaviour.objects.get(event_id="e2")) is None


@pytest.mark.parametrize(
    "value",
    [LIST_A, LIST_B, LIST_A.upper(), "{" + LIST_A + "}", "urn:uuid:" + LIST_A, 12345, "12345",
     "not-a-uuid", LIST_A + "0", 2**130, -1, True, 1.5, ["x"], {"a": 1}, "g" * 32],
)  # fmt: skip
def test_recommendation_id_is_read_as_the_api_reads_it(value):
    """The importer restates the API's rules (ingest may not import api): same answers."""
    from rest_framework.exceptions import ValidationError

    from recommender.api.serializers import BehaviourInputSerializer
    from recommender.ingest.fields import Row, uuid_cell

    field = BehaviourInputSerializer().fields["recommendation_id"]
    try:
        expected = field.run_validation(value)
    except ValidationError:
        expected = "refused"
    if value is True:
        expected = "refused"  # the one difference: DRF takes true as the UUID …0001
    try:
        got = uuid_cell(Row("line 2", {}), "recommendation_id", value)
    except ImportFailed:
        got = "refused"
    assert got == expected


@pytest.mark.parametrize(
    "value", [1, 2, 200, "7", "7.0", 7.0, " 7 ", "+7", 0, -1, "-1", 201, "201", 1.5, "1.5",
              "x", True, "1e2", [1], None, ""],
)  # fmt: skip
def test_position_is_read_as_the_api_reads_it(value):
    from rest_framework.exceptions import ValidationError

    from recommender.api.serializers import MAX_K, BehaviourInputSerializer
    from recommender.ingest.fields import MAX_POSITION, Row, position_cell

    assert MAX_POSITION == MAX_K
    field = BehaviourInputSerializer().fields["position"]
    try:
        expected = field.run_validation(None if value == "" else value)
    except ValidationError:
        expected = "refused"
    try:
        got = position_cell(Row("line 2", {}), "position", value)
    except ImportFailed:
        got = "refused"
    assert got == expected
