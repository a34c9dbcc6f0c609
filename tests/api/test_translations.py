"""Item texts in several languages (``Item.translations``): the model's fallbacks, the
item API and ``items/bulk``, and lists in the asked language."""

import pytest
from rest_framework.test import APIClient

from recommender.api import serializers
from recommender.models import Item
from recommender.spaces import embedding

pytestmark = pytest.mark.django_db
API = "/api/v1"

JACKET = {
    "en": {"title": "Women's long down jacket", "description": "Hooded and warm."},
    "en-GB": {"title": "Women's long down coat"},
    "ja": {"description": "フード付き"},
}


@pytest.fixture
def api(settings):
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    return APIClient()


def test_text_in_falls_back_field_by_field_and_from_region_to_language():
    item = Item(title="女士加长款保暖羽绒服", description="连帽，保暖。", translations=JACKET)
    assert item.text_in("en") == ("Women's long down jacket", "Hooded and warm.")
    # en-GB has its own title; its description comes from en.
    assert item.text_in("en-GB") == ("Women's long down coat", "Hooded and warm.")
    # en-US has nothing of its own: all from en.
    assert item.text_in("en-US") == ("Women's long down jacket", "Hooded and warm.")
    assert item.text_in("ja") == ("女士加长款保暖羽绒服", "フード付き")
    for main in ("zh", "fr", "", None):
        assert item.text_in(main) == ("女士加长款保暖羽绒服", "连帽，保暖。")
    assert Item(title="t", description="d").text_in("en") == ("t", "d")
    empty = Item(title="t", description="d", translations={"en": {"title": "", "description": ""}})
    assert empty.text_in("en") == ("t", "d")


def test_translations_are_written_and_read_through_the_item_api(api):
    response = api.post(
        f"{API}/items", {"id": "sku-1", "title": "羽绒服", "translations": JACKET}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["translations"] == JACKET
    assert Item.objects.get(external_id="sku-1").translations == JACKET
    assert api.get(f"{API}/items/sku-1").json()["translations"] == JACKET
    english = {"en": {"title": "Down jacket"}}
    response = api.patch(f"{API}/items/sku-1", {"translations": english}, format="json")
    assert response.status_code == 200, response.content
    assert Item.objects.get(external_id="sku-1").translations == english
    # Without translations, an item has none.
    api.post(f"{API}/items", {"id": "sku-2", "title": "茶"}, format="json")
    assert api.get(f"{API}/items/sku-2").json()["translations"] == {}


@pytest.mark.parametrize(
    ("translations", "where"),
    [
        ({"english": {"title": "Jacket"}}, "translations.english"),
        ({"EN": {"title": "Jacket"}}, "translations.EN"),
        ({"en": {"title": "Jacket", "brand": "x"}}, "translations.en.brand"),
        ({"en": {"title": "x" * 501}}, "translations.en.title"),
        ({"en": {"title": ""}}, "translations.en.title"),
        ({"en": {"title": 5}}, "translations.en.title"),
        ({"en": {"description": "x" * 20001}}, "translations.en.description"),
        ({"en": "Jacket"}, "translations.en"),
    ],
)
def test_bad_translations_are_refused_naming_the_field(api, translations, where):
    body = {"id": "sku-1", "title": "羽绒服", "translations": translations}
    response = api.post(f"{API}/items", body, format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["translations"]
    assert response.json()["translations"][0].startswith(where + ":")
    assert not Item.objects.exists()
    bulk = api.post(f"{API}/items/bulk", {"items": [body]}, format="json")
    assert bulk.status_code == 400 and "translations" in str(bulk.json())
    assert not Item.objects.exists()


def test_bulk_upsert_sets_translations_and_keeps_them_when_not_given(api):
    items = [
        {"id": "sku-1", "title": "羽绒服", "translations": {"en": {"title": "Down jacket"}}},
        {"id": "sku-2", "title": "绿茶"},
    ]
    response = api.post(f"{API}/items/bulk", {"items": items}, format="json")
    assert response.status_code == 200, response.content
    assert Item.objects.get(external_id="sku-1").translations == {"en": {"title": "Down jacket"}}
    assert Item.objects.get(external_id="sku-2").translations == {}
    response = api.post(
        f"{API}/items/bulk", {"items": [{"id": "sku-1", "title": "长款羽绒服"}]}, format="json"
    )
    assert response.status_code == 200, response.content
    item = Item.objects.get(external_id="sku-1")
    assert item.title == "长款羽绒服"
    assert item.translations == {"en": {"title": "Down jacket"}}


def test_lists_give_the_title_in_the_lists_language(api, hashing_space):
    items = [
        Item.objects.create(
            external_id=f"sku-{n}",
            title=f"羽绒服 款{n}",
            category="clothing",
            translations={"en": {"title": f"Down jacket {n}"}} if n % 2 else {},
        )
        for n in range(6)
    ]
    embedding.embed_items(hashing_space, [item.pk for item in items])
    titles = {}
    for lang in ("en", "zh"):
        response = api.get(f"{API}/items/sku-0/similar", {"k": 5, "lang": lang})
        assert response.status_code == 200, response.content
        assert response.json()["lang"] == lang
        titles[lang] = {item["id"]: item["title"] for item in response.json()["items"]}
    assert len(titles["en"]) == 5
    for external_id, title in titles["en"].items():
        n = int(external_id.removeprefix("sku-"))
        assert title == (f"Down jacket {n}" if n % 2 else f"羽绒服 款{n}")
    assert all(
        title == f"羽绒服 款{external_id.removeprefix('sku-')}"
        for external_id, title in titles["zh"].items()
    )
    # Accept-Language picks the list's language as ?lang= does.
    response = api.get(f"{API}/items/sku-0/similar", {"k": 5}, HTTP_ACCEPT_LANGUAGE="en-GB")
    assert response.json()["lang"] == "en"
    assert "Down jacket 1" in [item["title"] for item in response.json()["items"]]


def test_list_data_reads_the_title_through_text_in():
    class Result:
        item = Item(external_id="sku-1", title="羽绒服", translations={"en": {"title": "Jacket"}})
        score, sources, reason, blurb, promotion = 1.0, ["similar"], None, None, None

    assert serializers.recommendation_list_data([Result], None, "en")["items"][0]["title"] == (
        "Jacket"
    )
    assert serializers.recommendation_list_data([Result], None, "zh")["items"][0]["title"] == (
        "羽绒服"
    )
