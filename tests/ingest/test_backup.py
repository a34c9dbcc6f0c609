"""Full export and restore (``manage.py export`` / ``import_all``): a round trip gives the
same top-10 lists after re-embedding; a non-empty site, a bad line or an unknown format
version is refused with nothing written."""

import json
import random
import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from recommender.ingest import backup
from recommender.models import (
    Behaviour,
    EncoderSpace,
    EndUser,
    Item,
    ItemAttribute,
    Promotion,
    Scenario,
)
from recommender.serving.cooccurrence import refresh_cooccurrence
from recommender.serving.pipeline import RecommendationRequest, recommend
from recommender.spaces import embedding

pytestmark = pytest.mark.django_db

KINDS = ("view", "click", "cart", "purchase", "rating", "like")


@pytest.fixture
def shop(space):
    """40 items (translations, attributes, lifecycle), 25 users, several hundred behaviours
    of several kinds, a scenario with a promotion, a declared attribute."""
    rng = random.Random(21)
    now = timezone.now()
    ItemAttribute.objects.create(name="price", type="number", indexed=True, description="CNY")
    items = []
    for n in range(40):
        items.append(
            Item.objects.create(
                external_id=f"sku-{n}",
                title=f"商品 {n} {'羽绒服' if n % 2 else '绿茶'} 款{n % 7}",
                description=f"描述 {n}",
                category="coats" if n % 2 else "tea",
                tags=["autumn"] if n % 4 == 0 else ["classic", f"t{n % 3}"],
                attributes={"price": 10 * (n + 1), "brand": f"b{n % 3}"},
                translations={"en": {"title": f"item {n}", "description": f"about {n}"}},
                is_hidden=n == 5,
                available_until=now - timedelta(days=1) if n == 6 else None,
                available_from=now + timedelta(days=3) if n == 7 else None,
                created_at=now - timedelta(days=60 - n),
            )
        )
    embedding.embed_items(space, [item.pk for item in items])
    users = [
        EndUser.objects.create(external_id=f"u-{m}", attributes={"segment": f"s{m % 3}"})
        for m in range(25)
    ]
    rows = []
    for m, user in enumerate(users):
        for e in range(rng.randint(3, 15)):
            kind = rng.choice(KINDS)
            rows.append(
                Behaviour(
                    user=user,
                    item=items[(m * 3 + rng.randint(0, 12)) % 40],
                    kind=kind,
                    value=float(rng.randint(1, 5)) if kind == "rating" else None,
                    context={"device": "mobile"} if e % 3 == 0 else {},
                    event_id=f"e-{m}-{e}" if e % 2 else None,
                    occurred_at=now - timedelta(hours=rng.randint(1, 400)),
                )
            )
    list_id = uuid.uuid4()
    rows.append(
        Behaviour(
            user=users[0],
            item=items[3],
            kind="impression",
            recommendation_id=list_id,
            position=2,
            occurred_at=now - timedelta(hours=2),
        )
    )
    rows.append(Behaviour(user=users[1], kind="search", text="性价比高的外套", event_id="s1"))
    Behaviour.objects.bulk_create(rows)
    home = Scenario.objects.create(
        name="home", description="front page", k=10, space=space, filter="price < 350"
    )
    Promotion.objects.create(scenario=home, name="autumn", filter='"autumn" in tags', share=0.2)
    refresh_cooccurrence()
    return items


def top10(external_ids) -> dict[str, list[str]]:
    lists = {}
    for external_id in external_ids:
        user = EndUser.objects.get(external_id=external_id)
        found = recommend(RecommendationRequest(user=user, k=10, explain=False))
        lists[external_id] = [r.item.external_id for r in found]
    return lists


def wipe() -> None:
    """Everything, in dependency order (``Behaviour.item`` is PROTECT)."""
    Behaviour.objects.all().delete()
    Scenario.objects.all().delete()
    Item.objects.all().delete()
    EndUser.objects.all().delete()
    ItemAttribute.objects.all().delete()
    EncoderSpace.objects.all().delete()


ITEM_FIELDS = (
    "external_id", "title", "description", "category", "tags", "attributes", "translations",
    "is_active", "available_from", "available_until", "is_hidden", "created_at", "updated_at",
    "text_hash",
)  # fmt: skip
BEHAVIOUR_FIELDS = (
    "user__external_id", "item__external_id", "kind", "value", "text", "context", "event_id",
    "occurred_at", "created_at", "recommendation_id", "position",
)  # fmt: skip


def snapshot() -> tuple[list, list]:
    """Every item's stored fields and every behaviour, independent of primary keys."""
    items = list(Item.objects.order_by("external_id").values(*ITEM_FIELDS))
    behaviours = sorted(Behaviour.objects.values_list(*BEHAVIOUR_FIELDS), key=repr)
    return items, behaviours


def test_round_trip_gives_the_same_top10(shop, tmp_path, monkeypatch):
    # Lists depend on the clock (per-minute popularity, trending and freshness windows):
    # stop it, so that only the restore can change them.
    frozen = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: frozen)
    shoppers = [f"u-{m}" for m in range(20)]
    before = top10(shoppers)
    assert all(len(found) == 10 for found in before.values())
    stored = snapshot()

    call_command("export", str(tmp_path / "backup"), "--no-progress", stdout=_Out())
    wipe()
    out = _Out()
    call_command("import_all", str(tmp_path / "backup"), "--no-progress", stdout=out)
    assert "manage.py embed --space fast" in out.text

    space = EncoderSpace.objects.get(name="fast")
    assert space.is_active and space.plugin == "hashing" and space.dim == 48
    assert not space.vectors.exists()  # vectors are rebuilt, not restored
    embedding.embed_items(space, list(Item.objects.values_list("pk", flat=True)))
    refresh_cooccurrence()

    assert top10(shoppers) == before
    assert snapshot() == stored
    home = Scenario.objects.get(name="home")
    assert (home.space, home.filter, home.k) == (space, "price < 350", 10)
    assert list(home.promotions.values_list("name", "filter", "share")) == [
        ("autumn", '"autumn" in tags', 0.2)
    ]
    assert ItemAttribute.objects.get(name="price").indexed
    assert EndUser.objects.get(external_id="u-4").attributes == {"segment": "s1"}


class _Out:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_manifest(shop, tmp_path):
    manifest = backup.export_site(tmp_path)
    written = json.loads((tmp_path / "manifest.json").read_text())
    assert written["format"] == "recsite-backup" and written["format_version"] == 1
    assert written["counts"] == {
        "attributes": 1,
        "spaces": 1,
        "items": 40,
        "users": 25,
        "behaviours": Behaviour.objects.count(),
        "scenarios": 1,
    }
    assert written["counts"] == manifest["counts"]
    latest = (
        MigrationRecorder.Migration.objects.filter(app="recommender").order_by("name").last().name
    )
    assert written["migrations"]["latest"] == latest
    assert abs(timezone.now() - timezone.datetime.fromisoformat(written["created_at"])) < (
        timedelta(minutes=5)
    )
    for kind, count in written["counts"].items():
        lines = (tmp_path / written["files"][kind]).read_text(encoding="utf-8").splitlines()
        assert len(lines) == count
    space = json.loads((tmp_path / "spaces.jsonl").read_text())
    assert space["name"] == "fast" and space["plugin"] == "hashing" and space["is_active"]
    assert "embedding" not in space and "vectors" not in space
    assert (space["index_m"], space["index_ef_construction"]) == (16, 64)
    item = json.loads((tmp_path / "items.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert item["translations"] == {"en": {"title": "item 0", "description": "about 0"}}
    assert {"available_from", "available_until", "is_hidden", "attributes", "tags"} <= set(item)


def test_export_refuses_a_non_empty_folder(shop, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CommandError, match="not empty"):
        call_command("export", str(tmp_path), "--no-progress")
    call_command("export", str(tmp_path), "--no-progress", "--force", stdout=_Out())
    assert (tmp_path / "manifest.json").exists()


def test_import_refuses_a_site_that_is_not_empty(shop, tmp_path):
    backup.export_site(tmp_path)
    with pytest.raises(CommandError, match="not empty .*40 items"):
        call_command("import_all", str(tmp_path), "--no-progress")
    assert Item.objects.count() == 40


@pytest.mark.parametrize(
    ("kind", "line", "corrupt", "message"),
    [
        ("items", 3, lambda text: text[:-5], "not JSON"),
        ("items", 2, lambda text: text.replace('"is_hidden": false', '"is_hidden": 7'), "hidden"),
        ("behaviours", 7, lambda text: text.replace('"sku-', '"nope-', 1), "unknown item"),
        ("users", 4, lambda text: text.replace('"u-', '"u-0", "x": "', 1), "unknown field"),
        ("spaces", 1, lambda text: text.replace('"index_m": 16', '"index_m": 1'), "index_m"),
        (
            "spaces", 1, lambda text: text.replace('"index_m": 16', '"index_m": 40'),
            r"HNSW ef_construction \(64\) must be at least 2 × m \(80\)",
        ),
    ],
)  # fmt: skip
def test_a_bad_line_is_named_and_nothing_is_written(shop, tmp_path, kind, line, corrupt, message):
    backup.export_site(tmp_path)
    path = tmp_path / f"{kind}.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line - 1] = corrupt(lines[line - 1])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    wipe()
    with pytest.raises(CommandError, match=rf"{kind}\.jsonl, line {line}: .*{message}") as exc:
        call_command("import_all", str(tmp_path), "--no-progress")
    assert "nothing was restored" in str(exc.value)
    assert not Item.objects.exists() and not EndUser.objects.exists()
    assert not EncoderSpace.objects.exists() and not ItemAttribute.objects.exists()


def test_a_truncated_file_or_unknown_version_is_refused(shop, tmp_path):
    backup.export_site(tmp_path)
    wipe()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(CommandError, match="unknown format version 99"):
        call_command("import_all", str(tmp_path), "--no-progress")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    path = tmp_path / "behaviours.jsonl"
    path.write_text("\n".join(path.read_text().splitlines()[:-3]) + "\n")
    with pytest.raises(CommandError, match="behaviours.jsonl: .* the manifest says"):
        call_command("import_all", str(tmp_path), "--no-progress")
    assert not Item.objects.exists()
