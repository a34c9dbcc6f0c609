"""The serving API on the real stack with the demo catalogue (USE multilingual space)."""

import re

import numpy as np
import pytest
from django.apps import apps
from rest_framework.test import APIClient

from recommender import spaces
from recommender.demo import load
from recommender.models import Behaviour, EncoderSpace, EndUser, Item, ItemVector
from recommender.serving import cooccurrence
from recommender.serving.ranking import intra_list_distance
from recommender.spaces import embedding

API = "/api/v1"


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The demo shop, embedded in the default space, loaded once for this module."""
    with django_db_blocker.unblock():
        load.load()
        space = spaces.ensure_default_space()
        embedding.embed_items(space, list(Item.objects.values_list("pk", flat=True)))
        cooccurrence.refresh_cooccurrence()
        yield space
        for existing in EncoderSpace.objects.all():
            spaces.drop_index(existing)
        for model in (Behaviour, ItemVector, EncoderSpace, Item, EndUser):
            model.objects.all().delete()
        apps.get_model("recommender", "ItemCooccurrence").objects.all().delete()


@pytest.fixture
def api(demo, db):
    return APIClient()


def recs(api, user, **params):
    response = api.get(f"{API}/users/{user}/recommendations", params)
    assert response.status_code == 200, response.content
    return response.json()["items"]


def new_user(api, name):
    assert api.post(f"{API}/users", {"id": name}, format="json").status_code == 201
    return name


def post_event(api, **event):
    return api.post(f"{API}/behaviours", event, format="json")


def category_items(category, n):
    return list(Item.objects.filter(category=category, is_active=True).order_by("pk")[:n])


def test_brand_new_user_gets_a_non_empty_list(api):
    user = new_user(api, "fresh-1")
    items = recs(api, user, k=10)
    assert len(items) == 10
    assert all(item["reason"]["text"] for item in items)


def test_three_views_shift_the_next_list_to_that_category(api):
    user = new_user(api, "viewer-1")
    before = [item["category"] for item in recs(api, user, k=10)]
    for item in category_items("electronics", 3):
        response = post_event(api, user=user, item=item.external_id, kind="view")
        assert response.status_code == 201
        assert response.json()["profile_updated"] is True
    after = [item["category"] for item in recs(api, user, k=10)]
    assert after.count("electronics") >= 6
    assert after.count("electronics") > before.count("electronics")


def test_explanations_name_the_viewed_item(api):
    user = new_user(api, "viewer-2")
    viewed = category_items("books", 2)
    for item in viewed:
        post_event(api, user=user, item=item.external_id, kind="view")
    texts = [item["reason"]["text"] for item in recs(api, user, k=10, lang="zh")]
    assert any(f"因为你浏览了《{item.title}》" in text for text in texts for item in viewed), texts
    english = [item["reason"]["text"] for item in recs(api, user, k=10, lang="en")]
    assert any(text.startswith("Because you viewed") for text in english), english


def test_exclude_seen_holds(api):
    user = new_user(api, "seer")
    seen = category_items("food", 4)
    for item in seen:
        post_event(api, user=user, item=item.external_id, kind="click")
    seen_ids = {item.external_id for item in seen}
    listed = {item["id"] for item in recs(api, user, k=50)}
    assert not listed & seen_ids
    with_seen = {item["id"] for item in recs(api, user, k=50, exclude_seen="false")}
    assert with_seen & seen_ids


def test_dislike_pushes_the_item_and_its_near_duplicates_down(api, demo):
    user = new_user(api, "disliker")
    jacket = Item.objects.get(title="女士加长款保暖羽绒服")
    twins = [
        item
        for item in Item.objects.filter(category="clothing", title__contains="羽绒服").exclude(
            pk=jacket.pk
        )
    ]
    for item in category_items("clothing", 3):
        post_event(api, user=user, item=item.external_id, kind="view")
    query = {"k": 40, "exclude_seen": "false"}

    watched = {item.external_id for item in [jacket, *twins]}

    def positions():
        """Each watched item's place among the other items (99: not listed): whether the
        twins moved down, not whether watched items above them left the list."""
        ids = [item["id"] for item in recs(api, user, **query)]
        return {
            item.external_id: (
                len([i for i in ids[: ids.index(item.external_id)] if i not in watched])
                if item.external_id in ids
                else 99
            )
            for item in [jacket, *twins]
        }

    before = positions()
    response = post_event(api, user=user, item=jacket.external_id, kind="dislike")
    assert response.status_code == 201
    after = positions()
    assert after[jacket.external_id] == 99  # a disliked item is never shown again
    moved = [after[twin.external_id] - before[twin.external_id] for twin in twins]
    assert sum(moved) > 0 and all(step >= 0 for step in moved), (before, after)


def test_higher_diversity_spreads_the_list(api, demo):
    user = new_user(api, "diverse")
    for item in category_items("clothing", 3):
        post_event(api, user=user, item=item.external_id, kind="like")

    def measure(diversity):
        items = recs(api, user, k=10, diversity=diversity)
        vectors = embedding_vectors(demo, [item["id"] for item in items])
        return intra_list_distance(vectors), len({item["category"] for item in items})

    narrow, wide = measure(0.0), measure(0.9)
    assert wide[0] > narrow[0]
    assert wide[1] > narrow[1]


def embedding_vectors(space, external_ids):
    rows = dict(
        ItemVector.objects.filter(space=space, item__external_id__in=external_ids).values_list(
            "item__external_id", "embedding"
        )
    )
    return [np.asarray(rows[i], dtype=np.float32) for i in external_ids]


@pytest.mark.parametrize("intent", ["女性长款羽绒服", "women's long down jacket"])
def test_intent_puts_long_down_jackets_on_top(api, intent):
    user = new_user(api, f"intent-{len(intent)}")
    for item in category_items("electronics", 3):  # a history pointing elsewhere
        post_event(api, user=user, item=item.external_id, kind="view")
    top = recs(api, user, k=5, q=intent)
    assert "羽绒服" in top[0]["title"] and "长" in top[0]["title"], top[0]["title"]
    assert sum("羽绒服" in item["title"] for item in top[:3]) >= 2
    assert top[0]["reason"]["type"] == "intent"


def test_a_new_item_without_behaviour_is_recommended_through_its_text(api, demo):
    response = api.post(
        f"{API}/items",
        {
            "id": "sku-new-1",
            "title": "女士超长款加厚羽绒服 冬季新款",
            "category": "clothing",
            "tags": ["羽绒服", "长款", "保暖"],
            "description": "过膝长款，90%白鸭绒，保暖防风。",
        },
        format="json",
    )
    assert response.status_code == 201
    new_item = Item.objects.get(external_id="sku-new-1")
    embedding.embed_items(demo, [new_item.pk])  # the worker's job, done inline here
    user = new_user(api, "cold-item")
    for title in ("女士加长款保暖羽绒服", "女性长款连帽羽绒服"):
        post_event(api, user=user, item=Item.objects.get(title=title).external_id, kind="like")
    ids = [item["id"] for item in recs(api, user, k=10)]
    assert "sku-new-1" in ids
    assert not Behaviour.objects.filter(item=new_item).exists()


def test_forget_leaves_no_row_naming_the_user(api):
    user = new_user(api, "forget-me")
    item = category_items("food", 1)[0]
    post_event(api, user=user, item=item.external_id, kind="purchase", event_id="fm-1")
    post_event(api, user=user, kind="search", text="有机绿茶")
    recs(api, user, k=5)
    pk = EndUser.objects.get(external_id=user).pk
    export = api.get(f"{API}/users/{user}/export").json()
    assert len(export["behaviours"]) == 2 and export["profiles"]
    assert api.delete(f"{API}/users/{user}").status_code == 204
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if getattr(field, "related_model", None) is EndUser and field.concrete:
                assert not model.objects.filter(**{field.name: pk}).exists(), model
    assert not EndUser.objects.filter(pk=pk).exists()


def test_event_id_makes_posting_idempotent(api):
    user = new_user(api, "retrier")
    item = category_items("home", 1)[0]
    first = post_event(api, user=user, item=item.external_id, kind="cart", event_id="r-1")
    again = post_event(api, user=user, item=item.external_id, kind="cart", event_id="r-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["created"] is False and again.json()["profile_updated"] is False
    assert Behaviour.objects.filter(event_id="r-1").count() == 1


def test_batch_counts_repeated_event_ids_once(api):
    item = category_items("home", 1)[0].external_id
    events = [
        {"user": "batcher", "item": item, "kind": "view", "event_id": f"b-{n % 3}"}
        for n in range(6)
    ]
    response = api.post(f"{API}/behaviours/batch", {"events": events}, format="json")
    assert response.status_code == 201
    assert response.json() == {
        "created": 3,
        "duplicates": 3,
        "profiles_updated": 1,
        "forgotten": 0,
    }
    listed = api.get(f"{API}/behaviours", {"user": "batcher"}).json()
    assert listed["count"] == 3 and len(listed["results"]) == 3


def test_search_and_similar_and_session_recommendations(api):
    found = api.get(f"{API}/search", {"q": "机械键盘", "k": 5}).json()["items"]
    assert "键盘" in found[0]["title"]
    jacket = Item.objects.get(title="女士加长款保暖羽绒服").external_id
    similar = api.get(f"{API}/items/{jacket}/similar", {"k": 5}).json()["items"]
    assert sum("羽绒服" in item["title"] for item in similar) >= 2
    assert all(item["id"] != jacket for item in similar)
    session = api.post(f"{API}/recommendations", {"positive": [jacket], "k": 5}, format="json")
    assert session.status_code == 200
    assert session.json()["items"][0]["category"] == "clothing"


def test_bulk_upsert_items(api):
    payload = {"items": [{"id": "bulk-1", "title": "竹纤维毛巾"}, {"id": "bulk-2", "title": "T"}]}
    assert api.post(f"{API}/items/bulk", payload, format="json").json() == {
        "created": 2,
        "updated": 0,
    }
    payload["items"][1]["title"] = "纯棉浴巾"
    assert api.post(f"{API}/items/bulk", payload, format="json").json() == {
        "created": 0,
        "updated": 2,
    }
    assert Item.objects.get(external_id="bulk-2").title == "纯棉浴巾"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"k": 0}, "k"),
        ({"k": 201}, "k"),
        ({"diversity": 2}, "diversity"),
        ({"lang": "fr"}, "lang"),
        ({"price_min": 10, "price_max": 5}, "price_min"),
        ({"nonsense": 1}, "nonsense"),
        ({"q": "x" * 501}, "q"),
        ({"q": "a\x00b"}, "q"),
    ],
)
def test_bad_parameters_get_400_naming_the_field(api, params, field):
    user = new_user(api, "validator")
    response = api.get(f"{API}/users/{user}/recommendations", params)
    assert response.status_code == 400
    assert field in response.json()


def test_bad_events_get_400_and_write_nothing(api):
    before = Behaviour.objects.count()
    cases = [
        ({"user": "u", "item": "no-such-item", "kind": "view"}, "item"),
        ({"user": "u", "item": "sku-00001", "kind": "poke"}, "kind"),
        ({"user": "u", "kind": "search"}, "text"),
        ({"user": "u", "item": "sku-00001", "kind": "rating"}, "value"),
        ({"user": "u", "item": "sku-00001", "kind": "view", "extra": 1}, "extra"),
    ]
    for event, field in cases:
        response = post_event(api, **event)
        assert response.status_code == 400 and field in response.json(), (event, response.json())
    assert Behaviour.objects.count() == before


def test_unknown_ids_get_404(api):
    assert api.get(f"{API}/users/nobody/recommendations").status_code == 404
    assert api.get(f"{API}/items/nothing/similar").status_code == 404


def test_schema_and_offline_swagger_ui(api, admin_user):
    api.force_login(admin_user)  # with DEBUG off the docs are for keys and staff
    schema = api.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    for path in (
        "/api/v1/users/{id}/recommendations",
        "/api/v1/behaviours/batch",
        "/api/v1/search",
        "/api/v1/items/bulk",
    ):
        assert path in text
    docs = api.get("/api/docs/")
    page = docs.content.decode()
    assert docs.status_code == 200 and "swagger-ui" in page
    # Served offline: nothing loaded from another host (a bare "cdn" could be in a token).
    assert not re.search(r"""(?:src|href|url)\s*[=:(]\s*["']?(?:https?:)?//""", page), page
    assert "jsdelivr" not in page and "unpkg" not in page


def test_health_reports_the_active_space(api, demo):
    body = api.get(f"{API}/health/detail").json()
    assert body["database"] == "ok" and body["active_space"]["name"] == demo.name
    assert body["active_space"]["coverage"] == pytest.approx(1.0)


def test_bulk_with_a_repeated_id_is_a_400(api):
    payload = {"items": [{"id": "dup-1", "title": "a"}, {"id": "dup-1", "title": "b"}]}
    response = api.post(f"{API}/items/bulk", payload, format="json")
    assert response.status_code == 400 and "duplicate" in response.json()["items"][0]
    assert not Item.objects.filter(external_id="dup-1").exists()
