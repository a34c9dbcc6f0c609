"""No stored poison, bounded work per request: what every write path refuses (ids, JSON
sizes, absurd numbers), what a bad row that got in anyway can cost (its own blurb, never
a list), partial bulk updates, the attributes lists show, and the explained-list cap."""

import json
import time
import uuid
from pathlib import Path

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from recommender.ingest import limits
from recommender.ingest.behaviours import import_behaviours
from recommender.ingest.fields import ImportFailed
from recommender.ingest.files import read_rows
from recommender.ingest.items import import_items
from recommender.models import Behaviour, EndUser, Item
from recommender.serving import segmentation
from recommender.serving.explain import ItemText, Reason, blurb, shared_keywords
from recommender.spaces import embedding

pytestmark = pytest.mark.django_db
API = "/api/v1"
POISON = "1e999999999"  # Decimal reads it at once; int() of it never finishes


@pytest.fixture
def api(settings):
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    return APIClient()


@pytest.fixture
def shop(api, hashing_space):
    """Eight down jackets embedded in a small hashing space, and a shopper."""
    items = [
        Item.objects.create(
            external_id=f"sku-{i}",
            title=f"羽绒服 款{i}",
            tags=["羽绒服", "保暖"],
            description="冬季加厚连帽羽绒服，白鸭绒填充",
            attributes={"price": 100 + i, "brand": "北岭"},
        )
        for i in range(8)
    ]
    embedding.embed_items(hashing_space, [item.pk for item in items])
    EndUser.objects.create(external_id="u-1")
    return items


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def listed(response) -> dict[str, dict]:
    assert response.status_code == 200, response.content
    return {item["id"]: item for item in response.json()["items"]}


def every_list(api, about: str) -> list[dict[str, dict]]:
    """Recommendations, search, similar items and a session list (all explained)."""
    return [
        listed(api.get(f"{API}/users/u-1/recommendations", {"k": 10})),
        listed(api.get(f"{API}/search", {"q": "羽绒服", "k": 10})),
        listed(api.get(f"{API}/items/{about}/similar", {"k": 10})),
        listed(api.post(f"{API}/recommendations", {"positive": [about], "k": 10}, format="json")),
    ]


# --- a bad row that got in anyway ------------------------------------------------------


def test_price_1e5000_cannot_break_a_list(api, shop):
    poisoned = shop[1]
    for price in ("1e5000", POISON):
        # Straight into the database, past every write check (an old row, a raw import).
        Item.objects.filter(pk=poisoned.pk).update(attributes={"price": price})
        started = time.perf_counter()
        lists = every_list(api, shop[0].external_id)
        assert time.perf_counter() - started < 10
        for items in lists:
            assert poisoned.external_id in items
            assert "¥" not in (items[poisoned.external_id]["blurb"] or "")


def test_one_bad_row_costs_only_its_own_reason_and_blurb(api, shop):
    poisoned = shop[1]
    # Not an object: the blurb cannot read a brand or price from it, and raises.
    Item.objects.filter(pk=poisoned.pk).update(attributes=["not", "an", "object"])
    for items in every_list(api, shop[0].external_id):
        bad = items[poisoned.external_id]
        assert (bad["reason"], bad["blurb"], bad["attributes"]) == (None, None, {})
        others = [item for key, item in items.items() if key != poisoned.external_id]
        assert others and all(item["blurb"] and item["reason"] for item in others)


def test_blurb_shows_no_price_for_an_absurd_exponent():
    reason = Reason("popular", "热门商品")
    for price in ("1e5000", POISON, "-1e5000", "1e-5000", 1e300):
        started = time.perf_counter()
        text = blurb(ItemText(title="羽绒服", attributes={"price": price}), reason, "zh")
        assert time.perf_counter() - started < 1
        assert "¥" not in text
    assert "¥899" in blurb(ItemText(title="羽绒服", attributes={"price": "899"}), reason, "zh")


# --- absurd prices and numbers, refused on every write path -----------------------------


def test_price_1e999999999_is_refused_quickly_by_the_api(api):
    started = time.perf_counter()
    body = {"id": "p1", "title": "羽绒服", "attributes": {"price": POISON}}
    response = api.post(f"{API}/items", body, format="json")
    assert time.perf_counter() - started < 1
    assert response.status_code == 400
    assert response.json() == {
        "attributes": ["attributes.price: must be a number between 0 and 1e12"]
    }
    Item.objects.create(external_id="p2", title="羽绒服")
    response = api.patch(f"{API}/items/p2", {"attributes": {"price": "1e5000"}}, format="json")
    assert response.status_code == 400 and "attributes" in response.json()
    assert not Item.objects.filter(external_id="p1").exists()
    assert Item.objects.get(external_id="p2").attributes == {}


def test_price_1e999999999_is_refused_quickly_by_bulk(api):
    items = [
        {"id": "b1", "title": "ok"},
        {"id": "b2", "title": "t", "attributes": {"price": POISON}},
    ]
    started = time.perf_counter()
    response = api.post(f"{API}/items/bulk", {"items": items}, format="json")
    assert time.perf_counter() - started < 1
    assert response.status_code == 400
    assert response.json() == {
        "items": {"1": {"attributes": ["attributes.price: must be a number between 0 and 1e12"]}}
    }
    assert not Item.objects.exists()


@pytest.mark.parametrize("price", ["1e5000", POISON, "-5", "1e12"])
def test_price_1e999999999_is_refused_quickly_by_the_importer(tmp_path, price):
    path = write(tmp_path, "items.csv", f"external_id,title,price\na1,Fine,10\na2,Bad,{price}\n")
    started = time.perf_counter()
    with pytest.raises(ImportFailed) as failed:
        import_items(read_rows(path))
    assert time.perf_counter() - started < 1
    assert (failed.value.where, failed.value.column) == ("line 3", "price")
    path = write(
        tmp_path,
        "items.jsonl",
        json.dumps({"external_id": "a3", "title": "t", "attributes": {"price": price}}),
    )
    with pytest.raises(ImportFailed, match=r"attributes\.price: must be a number"):
        import_items(read_rows(path))
    assert not Item.objects.exists()


def test_words_and_long_codes_stay_text_in_an_import(tmp_path):
    path = write(
        tmp_path,
        "items.csv",
        "external_id,title,colour,ean,weight\na1,Fine,NaN,012345678901234567,2.5\n",
    )
    import_items(read_rows(path))
    assert Item.objects.get().attributes == {
        "colour": "NaN",
        "ean": "012345678901234567",
        "weight": 2.5,
    }


def test_price_1e999999999_is_refused_quickly_by_the_admin(admin_client):
    form = {
        "external_id": "adm-1",
        "title": "羽绒服",
        "description": "",
        "category": "",
        "tags": "[]",
        "attributes": json.dumps({"price": POISON}),
        "is_active": "on",
    }
    started = time.perf_counter()
    response = admin_client.post(reverse("admin:recommender_item_add"), form)
    assert time.perf_counter() - started < 2
    assert response.status_code == 200  # the form again, with the error on the field
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["attributes"] and "attributes.price" in errors["attributes"][0]
    assert not Item.objects.exists()
    form["attributes"] = json.dumps({"price": 899})
    response = admin_client.post(reverse("admin:recommender_item_add"), form)
    assert response.status_code == 302 and Item.objects.get().attributes == {"price": 899}


def test_numbers_anywhere_in_attributes_are_bounded(api):
    body = {"id": "n1", "title": "t", "attributes": {"sizes": [38, 40, 10**16]}}
    response = api.post(f"{API}/items", body, format="json")
    assert response.status_code == 400
    assert response.json()["attributes"] == [
        "attributes.sizes[2]: must be a number between -1e15 and 1e15"
    ]
    body["attributes"] = {"price": "899元"}  # a price must be a number, not a display string
    assert api.post(f"{API}/items", body, format="json").status_code == 400
    body["attributes"] = {"price": "899.50", "sizes": [38, 40], "weight": -1.5}
    assert api.post(f"{API}/items", body, format="json").status_code == 201


# --- sizes ---------------------------------------------------------------------------


def test_oversized_attributes_and_context_are_refused(api, settings):
    Item.objects.create(external_id="i1", title="t")
    big = {"note": "x" * 17000}
    response = api.post(
        f"{API}/items", {"id": "s1", "title": "t", "attributes": big}, format="json"
    )
    assert response.status_code == 400 and "bytes" in response.json()["attributes"][0]
    response = api.post(f"{API}/users", {"id": "s1", "attributes": big}, format="json")
    assert response.status_code == 400 and "attributes" in response.json()
    event = {"user": "s1", "item": "i1", "kind": "view", "context": {"note": "x" * 5000}}
    response = api.post(f"{API}/behaviours", event, format="json")
    assert response.status_code == 400 and "context" in response.json()
    settings.RECOMMENDER_MAX_CONTEXT_BYTES = 100
    event["context"] = {"note": "x" * 200}
    assert api.post(f"{API}/behaviours", event, format="json").status_code == 400
    assert not Behaviour.objects.exists() and not EndUser.objects.exists()


# --- ids ------------------------------------------------------------------------------

BAD_IDS = ["a/b", "a\x07b", "a\nb", " a", "a ", "x" * 201]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_unaddressable_ids_are_refused_by_the_api(api, bad):
    Item.objects.create(external_id="i1", title="t")
    EndUser.objects.create(external_id="u1")
    cases = [
        (f"{API}/items", {"id": bad, "title": "t"}, "id"),
        (f"{API}/users", {"id": bad}, "id"),
        (f"{API}/behaviours", {"user": bad, "item": "i1", "kind": "view"}, "user"),
        (f"{API}/behaviours", {"user": "u1", "item": bad, "kind": "view"}, "item"),
        (
            f"{API}/behaviours",
            {"user": "u1", "item": "i1", "kind": "view", "event_id": bad},
            "event_id",
        ),
    ]
    for path, body, field in cases:
        response = api.post(path, body, format="json")
        assert response.status_code == 400 and field in response.json(), (body, response.json())
    response = api.post(f"{API}/items/bulk", {"items": [{"id": bad, "title": "t"}]}, format="json")
    assert response.status_code == 400
    assert Item.objects.count() == 1 and EndUser.objects.count() == 1
    assert not Behaviour.objects.exists()


def test_unaddressable_ids_are_refused_by_the_importers(tmp_path):
    path = write(tmp_path, "items.csv", "external_id,title\nok,Fine\na/b,Slash\n")
    with pytest.raises(ImportFailed, match=r"^line 3: column 'external_id': must not contain '/'"):
        import_items(read_rows(path))
    Item.objects.create(external_id="i1", title="t")
    path = write(tmp_path, "events.csv", "user,item,kind\nu\x07x,i1,view\n")
    with pytest.raises(ImportFailed, match=r"column 'user': must not contain control characters"):
        import_behaviours(read_rows(path))
    path = write(tmp_path, "events2.csv", "user,item,kind\nu1,i/1,view\n")
    with pytest.raises(ImportFailed, match=r"column 'item': must not contain '/'"):
        import_behaviours(read_rows(path))
    assert Item.objects.count() == 1 and not Behaviour.objects.exists()


def test_unaddressable_ids_are_refused_by_the_admin(admin_client):
    response = admin_client.post(
        reverse("admin:recommender_enduser_add"), {"external_id": "a/b", "attributes": "{}"}
    )
    assert response.status_code == 200
    assert "external_id" in response.context["adminform"].form.errors
    assert not EndUser.objects.exists()


def test_check_external_id_gives_a_readable_reason():
    assert limits.check_external_id("sku-00001") == "sku-00001"
    assert limits.check_external_id("用户 42") == "用户 42"
    with pytest.raises(ValueError, match="must not contain '/'"):
        limits.check_external_id("a/b")
    with pytest.raises(ValueError, match="whitespace"):
        limits.check_external_id("a\t")
    with pytest.raises(ValueError, match="empty"):
        limits.check_external_id("")


# --- items/bulk and imports update only what they are given ------------------------------


@pytest.fixture
def stocked(api):
    Item.objects.create(
        external_id="d1",
        title="女士加长款羽绒服",
        description="冬季加厚，白鸭绒填充",
        category="clothing",
        tags=["羽绒服"],
        attributes={"price": 899, "brand": "北岭"},
    )
    Item.objects.create(external_id="w1", title="已下架的外套", is_active=False)


def test_bulk_partial_update_keeps_description(api, stocked):
    records = [{"id": "d1", "attributes": {"price": 799}}]
    response = api.post(f"{API}/items/bulk", {"items": records}, format="json")
    assert response.json() == {"created": 0, "updated": 1}
    item = Item.objects.get(external_id="d1")
    assert item.attributes == {"price": 799}
    assert (item.title, item.description, item.category, item.tags, item.is_active) == (
        "女士加长款羽绒服",
        "冬季加厚，白鸭绒填充",
        "clothing",
        ["羽绒服"],
        True,
    )


def test_bulk_update_does_not_reactivate_withdrawn_item(api, stocked):
    records = [{"id": "w1", "attributes": {"price": 10}}, {"id": "d1", "title": "新标题"}]
    assert api.post(f"{API}/items/bulk", {"items": records}, format="json").status_code == 200
    assert not Item.objects.get(external_id="w1").is_active
    assert Item.objects.get(external_id="d1").description == "冬季加厚，白鸭绒填充"
    records = [{"id": "w1", "is_active": True}]
    assert api.post(f"{API}/items/bulk", {"items": records}, format="json").status_code == 200
    assert Item.objects.get(external_id="w1").is_active  # when asked to


def test_bulk_new_item_needs_a_title_and_gets_defaults(api, stocked):
    records = [{"id": "d1", "tags": ["新"]}, {"id": "new-1", "attributes": {"price": 1}}]
    response = api.post(f"{API}/items/bulk", {"items": records}, format="json")
    assert response.status_code == 400
    assert response.json() == {"items": ["items[1]: title: a new item needs a title"]}
    assert Item.objects.get(external_id="d1").tags == ["羽绒服"]  # all or nothing
    records = [{"id": "new-1", "title": "竹纤维毛巾"}]
    assert api.post(f"{API}/items/bulk", {"items": records}, format="json").status_code == 200
    item = Item.objects.get(external_id="new-1")
    assert (item.description, item.tags, item.attributes, item.is_active) == ("", [], {}, True)


def test_csv_import_leaves_fields_without_a_column_alone(tmp_path, stocked):
    path = write(tmp_path, "prices.csv", "external_id,title,price\nd1,女士加长款羽绒服,699\n")
    report = import_items(read_rows(path))
    assert (report.created, report.updated) == (0, 1)
    item = Item.objects.get(external_id="d1")
    assert item.attributes == {"price": 699}
    assert item.description == "冬季加厚，白鸭绒填充" and item.tags == ["羽绒服"]
    # A column that is there, empty, still means the default (the whole-row semantics).
    path = write(tmp_path, "rows.csv", "external_id,title,description\nd1,女士加长款羽绒服,\n")
    import_items(read_rows(path))
    assert Item.objects.get(external_id="d1").description == ""


# --- what lists show ----------------------------------------------------------------------


def test_unlisted_attribute_is_not_in_lists(api, shop, settings):
    Item.objects.filter(external_id__startswith="sku-").update(
        attributes={"price": 99, "brand": "北岭", "cost_price": 41, "supplier": "某工厂"}
    )
    for items in every_list(api, shop[0].external_id):
        for item in items.values():
            assert item["attributes"] == {"price": 99, "brand": "北岭"}
    detail = api.get(f"{API}/items/{shop[0].external_id}").json()
    assert detail["attributes"]["cost_price"] == 41  # the catalogue read keeps them all
    settings.RECOMMENDER_PUBLIC_ATTRIBUTES = "*"
    items = listed(api.get(f"{API}/search", {"q": "羽绒服"}))
    assert all(item["attributes"]["supplier"] == "某工厂" for item in items.values())


# --- bounded work per request ------------------------------------------------------------


def test_k_over_cap_with_explanations_is_400(api, shop, settings):
    about = shop[0].external_id
    refused = [
        api.get(f"{API}/users/u-1/recommendations", {"k": 51}),
        api.get(f"{API}/users/u-1/recommendations", {"k": 51, "q": "羽绒服", "explain": "false"}),
        api.get(f"{API}/search", {"q": "羽绒服", "k": 51}),
        api.get(f"{API}/items/{about}/similar", {"k": 51}),
        api.post(f"{API}/recommendations", {"positive": [about], "k": 51}, format="json"),
    ]
    for response in refused:
        assert response.status_code == 400 and list(response.json()) == ["k"], response.json()
    assert "explain=false" in refused[0].json()["k"][0]
    bare = api.get(f"{API}/users/u-1/recommendations", {"k": 200, "explain": "false"})
    assert bare.status_code == 200
    assert api.get(f"{API}/users/u-1/recommendations", {"k": 50}).status_code == 200
    settings.RECOMMENDER_MAX_K_EXPLAINED = 5
    assert api.get(f"{API}/search", {"q": "羽绒服", "k": 6}).status_code == 400


def test_segmentation_cache_is_keyed_by_text_hash():
    marker = uuid.uuid4().hex  # a text this process has not segmented yet
    item = ItemText(title=f"羽绒服 {marker}")
    assert shared_keywords("羽绒服", item) == ["羽绒服"]
    blurb(item, Reason("popular", "热门商品"), "zh")
    keys = segmentation.local_keys()
    assert keys and all(len(digest) == 32 and int(digest, 16) >= 0 for _, digest in keys)
    assert not any(marker in repr(key) for key in keys)
    # The shared layer holds the same segmentation under the hash, for other processes.
    from django.core.cache import cache

    text = f"羽绒服 {marker}".lower()
    assert cache.get(segmentation.shared_key("tokens", text)) == frozenset(["羽绒服", marker])


def test_segmentation_reads_only_the_start_of_a_long_description():
    filler = "保暖 " * (segmentation.DESCRIPTION_CHARS // 3 + 10)
    item = ItemText(title="外套", description=filler + "羊绒")
    assert shared_keywords("羊绒 保暖", item) == ["保暖"]
    started = time.perf_counter()
    huge = ItemText(title="外套", description="长文本 " * 1_000_000)
    shared_keywords(f"外套 {uuid.uuid4().hex}", huge)
    blurb(huge, Reason("popular", "热门商品"), "zh")
    assert time.perf_counter() - started < 2


def test_segmentation_fails_open_when_the_shared_cache_is_down(settings, monkeypatch):
    monkeypatch.setattr(segmentation, "_shared_retry_at", 0.0)  # restored afterwards
    settings.CACHES = {
        "default": {
            "BACKEND": "recsite.cache.ReusedClientRedisCache",
            "LOCATION": "unix:///nonexistent/redis.sock",
        }
    }
    item = ItemText(title=f"羽绒服 {uuid.uuid4().hex}", description="白鸭绒填充")
    assert shared_keywords("羽绒服", item) == ["羽绒服"]
    assert blurb(item, Reason("popular", "热门商品"), "zh").startswith("这款")
