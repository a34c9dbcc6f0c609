"""Business rules on the request path: filters and boosters on every list endpoint and in
scenarios, promotions, item lifecycle, typed attributes, per-scenario spaces, retention."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient

from recommender import attributes, spaces
from recommender.models import Behaviour, EndUser, Item, ItemAttribute, Promotion, Scenario
from recommender.serving import business, pipeline, profiles
from recommender.serving.filters import Filters
from recommender.serving.nearest import nearest_rows
from recommender.spaces import embedding
from tests.serving.test_rules import BINDINGS as FUZZ_BINDINGS
from tests.serving.test_rules import _expressions as rule_texts

pytestmark = pytest.mark.django_db
API = "/api/v1"
BRANDS = ("Lumetra", "Linmu", "Qingshan")


@pytest.fixture
def shop(settings, space):
    """Thirty items: prices 10…300, three brands, tags, two categories; item n bought by
    n other users (so popularity grows with n); a shopper "alice" who viewed item 0."""
    settings.RECOMMENDER_ITEM_ATTRIBUTES = {
        "price": "number",
        "brand": "string",
        "organic": "boolean",
        "colors": "set",
        "launch": "timestamp",
    }
    items = []
    for n in range(30):
        items.append(
            Item.objects.create(
                external_id=f"i{n:02d}",
                title=f"商品 {n} 绿茶 礼盒" if n % 2 else f"item {n} tea mug",
                category="tea" if n % 2 else "home",
                tags=["organic"] if n % 3 == 0 else ["classic"],
                attributes={
                    "price": 10 * (n + 1),
                    "brand": BRANDS[n % 3],
                    "organic": n % 3 == 0,
                    "colors": ["red"] if n % 5 == 0 else ["blue", "green"],
                },
            )
        )
    embedding.embed_items(space, [item.pk for item in items])
    buyers = [EndUser.objects.create(external_id=f"buyer-{m}") for m in range(30)]
    Behaviour.objects.bulk_create(
        Behaviour(user=buyers[m], item=item, kind="purchase")
        for n, item in enumerate(items)
        for m in range(n)
    )
    alice = EndUser.objects.create(
        external_id="alice", attributes={"blocked_brands": ["Qingshan"], "segment": "tea"}
    )
    Behaviour.objects.create(user=alice, item=items[0], kind="view")
    return items


def ids(body) -> list[str]:
    return [item["id"] for item in body["items"]]


def attrs_of(external_ids):
    found = {i.external_id: i for i in Item.objects.filter(external_id__in=external_ids)}
    return [found[i] for i in external_ids]


def get(path, **params):
    return APIClient().get(f"{API}{path}", params)


# --- Filters on every list endpoint ----------------------------------------------------------


def test_a_request_filter_holds_for_every_item_of_every_endpoint(shop):
    rule = 'price < 150 and brand != "Linmu" and "organic" in tags'
    expected = {
        i.external_id
        for i in shop
        if i.attributes["price"] < 150 and i.attributes["brand"] != "Linmu" and "organic" in i.tags
    }
    lists = [
        get("/users/alice/recommendations", filter=rule, k=10, exclude_seen="false").json(),
        get("/search", q="绿茶 tea", filter=rule, k=10).json(),
        get(f"/items/{shop[3].external_id}/similar", filter=rule, k=10).json(),
        APIClient()
        .post(f"{API}/recommendations", {"text": "tea", "filter": rule, "k": 10}, format="json")
        .json(),
    ]
    for body in lists:
        assert ids(body), body
        assert set(ids(body)) <= expected, body


def test_user_context_and_parameter_references(shop):
    body = get(
        "/users/alice/recommendations",
        filter="brand not in user.blocked_brands and price <= $max_price",
        params='{"max_price": 120}',
        k=20,
    ).json()
    assert ids(body)
    for item in attrs_of(ids(body)):
        assert item.attributes["brand"] != "Qingshan" and item.attributes["price"] <= 120
    # A context reference: only for the context the request sends.
    rule = 'context.device != "mobile" or category == "tea"'
    mobile = get("/users/alice/recommendations", filter=rule, device="mobile", k=20).json()
    desktop = get("/users/alice/recommendations", filter=rule, device="desktop", k=20).json()
    assert {i.category for i in attrs_of(ids(mobile))} == {"tea"}
    assert {i.category for i in attrs_of(ids(desktop))} == {"tea", "home"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"filter": "price < "}, "filter"),
        ({"filter": 'price < "cheap"'}, "filter"),
        ({"filter": "colour == 1"}, "filter"),
        ({"boost": "brand"}, "boost"),
        ({"filter": "price < $max_price"}, "filter"),  # the parameter is not given
        ({"filter": "price < $p", "params": "[1]"}, "params"),
        ({"filter": "price < $p", "params": "{not json"}, "params"),
    ],
)
def test_a_bad_rule_is_a_400_naming_the_field_and_the_column(shop, params, field):
    response = get("/users/alice/recommendations", **params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body, body
    if field in ("filter", "boost") and "$" not in params.get("filter", ""):
        assert "column" in body[field][0], body


def test_an_injection_through_any_part_of_a_rule_changes_nothing(shop):
    count = Item.objects.count()
    hostile = "x'); DROP TABLE recommender_item; --"
    for params in (
        {"filter": f'brand == "{hostile}"'},
        {"filter": "brand == $b", "params": json.dumps({"b": hostile})},
        {"filter": f"brand == '{hostile}' or price > 0"},
    ):
        response = get("/users/alice/recommendations", **params)
        assert response.status_code in (200, 400), response.content
    alice = EndUser.objects.get(external_id="alice")
    alice.attributes = {"blocked_brands": [hostile, "' OR 1=1 --"]}
    alice.save()
    body = get("/users/alice/recommendations", filter="brand in user.blocked_brands").json()
    assert ids(body) == []  # no item has such a brand: the value compared, not run
    assert Item.objects.count() == count


# --- The HNSW path agrees with an exact evaluation -------------------------------------------


FILTERS = [
    "price < 100",
    "price >= 150 and price <= 200",
    '"organic" in tags',
    '"red" in colors',
    'brand in ("Lumetra", "Qingshan") and not organic',
    'category == "tea" or price > 280',
    "exists(colors) and not (price > 50)",
]


@pytest.mark.parametrize("rule", FILTERS)
def test_the_vector_search_returns_exactly_the_items_an_exact_filtered_search_would(
    shop, space, rule
):
    vector = embedding.encoder_for(space).encode(["绿茶 礼盒"])[0]
    filters = business.with_rules(Filters(), [rule])
    found = nearest_rows(vector, 8, space=space, filters=filters, columns=False)
    sql, params = business._compiled(rule, "filter", user={}, context={}, params={}, now=None)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(
            "SELECT v.item_id, v.embedding::vector(48) <=> %s::vector(48) FROM "
            "recommender_itemvector v JOIN recommender_item "
            "ON recommender_item.id = v.item_id WHERE v.space_id = %s AND "
            f"({sql}) ORDER BY 2, 1",
            ["[" + ",".join(str(float(x)) for x in vector) + "]", space.pk, *params],
        )
        exact = cursor.fetchall()
    passing = {item_id for item_id, _ in exact}
    assert found and {row.item_id for row in found} <= passing
    # The same distances in the same order (items at equal distance may swap).
    assert [round(1 - row.similarity, 5) for row in found] == [
        round(distance, 5) for _, distance in exact[:8]
    ]


@pytest.mark.fuzz
@hypothesis_settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(generated=rule_texts())
def test_generated_rules_never_500_and_serve_only_items_that_pass_them(shop, space, generated):
    """Over the rule grammar (tests/serving/test_rules.py's generator): the endpoint answers
    200 or 400, never 500; a 200 list holds only items an exact SQL evaluation of the same
    rule passes; the HNSW search and the exact filtered search agree."""
    kind, text = generated
    params = {kind: text, "params": json.dumps(FUZZ_BINDINGS["params"]), "device": "mobile"}
    response = get("/users/alice/recommendations", k=8, explain="false", **params)
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400 or kind != "filter":
        return
    bound = {
        "user": EndUser.objects.get(external_id="alice").attributes,
        "context": {"device": "mobile"},
        "params": FUZZ_BINDINGS["params"],
        "now": None,
    }
    sql, sql_params = business._compiled(text, "filter", **bound)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT external_id FROM recommender_item WHERE {sql}", sql_params)
        passing = {row[0] for row in cursor.fetchall()}
    assert set(ids(response.json())) <= passing
    vector = embedding.encoder_for(space).encode(["绿茶 礼盒"])[0]
    found = nearest_rows(
        vector, 8, space=space, filters=Filters().with_rule(sql, sql_params), columns=False
    )
    expected = min(8, len(passing))  # every item has a vector in this space
    assert len(found) == expected
    names = dict(Item.objects.values_list("pk", "external_id"))
    assert {names[row.item_id] for row in found} <= passing


# --- Boosters and promotions -------------------------------------------------------------------


def test_a_booster_moves_the_boosted_item_up(shop):
    plain = ids(get("/users/alice/recommendations", k=10, explain="false").json())
    last = plain[-1]
    boosted = ids(
        get(
            "/users/alice/recommendations",
            k=10,
            explain="false",
            boost=f'if(external_id == "{last}", 50, 1)',
        ).json()
    )
    assert boosted.index(last) < plain.index(last)
    assert boosted[0] == last


def test_a_scenario_booster_and_filter_apply_with_the_requests(shop):
    Scenario.objects.create(name="home", filter="price >= 100", boost='if(brand == "Linmu", 3, 1)')
    body = get("/users/alice/recommendations", scenario="home", filter="price < 200", k=6).json()
    items = attrs_of(ids(body))
    assert items and all(100 <= i.attributes["price"] < 200 for i in items)
    assert items[0].attributes["brand"] == "Linmu"


def test_a_promotion_fills_exactly_its_share_of_slots_and_is_labelled(shop):
    scenario = Scenario.objects.create(name="home", k=10)
    Promotion.objects.create(scenario=scenario, name="autumn", filter='"red" in colors', share=0.3)
    body = get("/users/alice/recommendations", scenario="home").json()
    promoted = [item for item in body["items"] if item["promotion"] == "autumn"]
    assert len(body["items"]) == 10 and len(promoted) == 3
    assert all("red" in i.attributes["colors"] for i in attrs_of([p["id"] for p in promoted]))
    assert len(set(ids(body))) == 10  # no item twice
    # An inactive promotion keeps no slot (switched off as the admin does, by a save:
    # serving keeps the scenarios it read until one is saved).
    for promotion in Promotion.objects.all():
        promotion.is_active = False
        promotion.save()
    body = get("/users/alice/recommendations", scenario="home").json()
    assert not [item for item in body["items"] if item["promotion"]]


def test_a_promotion_with_fewer_matches_than_slots_leaves_the_rest_to_the_list(shop):
    scenario = Scenario.objects.create(name="home", k=10)
    Promotion.objects.create(
        scenario=scenario, name="one", filter='external_id == "i07"', share=0.5
    )
    body = get("/users/alice/recommendations", scenario="home").json()
    assert len(body["items"]) == 10
    assert [item["id"] for item in body["items"] if item["promotion"]] == ["i07"]


# --- Lifecycle -------------------------------------------------------------------------------


def test_expired_future_and_hidden_items_are_never_recommended(shop):
    now = timezone.now()
    expired, future, hidden = shop[29], shop[28], shop[27]  # the most popular ones
    Item.objects.filter(pk=expired.pk).update(available_until=now - timedelta(minutes=1))
    Item.objects.filter(pk=future.pk).update(available_from=now + timedelta(days=1))
    Item.objects.filter(pk=hidden.pk).update(is_hidden=True)
    gone = {expired.external_id, future.external_id, hidden.external_id}
    for body in (
        get("/users/alice/recommendations", k=30, explain="false").json(),
        get(f"/items/{shop[1].external_id}/similar", k=20).json(),
        APIClient().post(f"{API}/recommendations", {"text": "商品 绿茶"}, format="json").json(),
    ):
        assert ids(body) and not gone & set(ids(body)), body
    # Search still finds the hidden item (not the expired or the future one).
    found = ids(get("/search", q=hidden.title, k=20).json())
    assert hidden.external_id in found
    assert expired.external_id not in found and future.external_id not in found
    # Back inside its window, without re-indexing anything.
    Item.objects.filter(pk=expired.pk).update(available_until=now + timedelta(days=1))
    assert expired.external_id in ids(
        get("/users/alice/recommendations", k=30, explain="false").json()
    )


# --- Typed attributes --------------------------------------------------------------------------


def test_declared_attributes_are_checked_on_write_with_the_field_named(shop, settings):
    client = APIClient()
    bad = client.post(
        f"{API}/items",
        {"id": "x1", "title": "t", "attributes": {"price": 3, "organic": "yes"}},
        format="json",
    )
    assert bad.status_code == 400 and "attributes.organic" in str(bad.json()), bad.content
    good = client.post(
        f"{API}/items",
        {"id": "x2", "title": "t", "attributes": {"price": "12.5", "free": {"any": 1}}},
        format="json",
    )
    assert good.status_code == 201, good.content
    assert Item.objects.get(external_id="x2").attributes["price"] == 12.5  # stored as a number


def test_an_admin_declared_attribute_types_filters_and_writes(shop, admin_client):
    assert get("/users/alice/recommendations", filter="weight < 3").status_code == 400
    response = admin_client.post(
        "/admin/recommender/itemattribute/add/",
        {"name": "weight", "type": "number", "description": "kg"},
    )
    assert response.status_code == 302, response.content
    assert attributes.types()["weight"] == "number"
    Item.objects.filter(external_id="i05").update(attributes={"weight": 2, "price": 60})
    body = get("/users/alice/recommendations", filter="weight < 3", k=10).json()
    assert ids(body) == ["i05"]
    # A name that could not be a rule's field is refused.
    response = admin_client.post(
        "/admin/recommender/itemattribute/add/", {"name": "bad name", "type": "number"}
    )
    assert response.status_code == 200 and ItemAttribute.objects.count() == 1


def test_a_malformed_attribute_setting_is_a_readable_error(settings):
    settings.RECOMMENDER_ITEM_ATTRIBUTES = {"price": "money"}
    with pytest.raises(attributes.SchemaError, match="price"):
        attributes.schema()


@pytest.mark.django_db(transaction=True)
def test_index_attributes_builds_an_index_filters_can_use(settings):
    from recommender.tasks import index_attributes

    settings.RECOMMENDER_ITEM_ATTRIBUTES = {"price": {"type": "number", "indexed": True}}
    assert index_attributes() == {"indexes": 1}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s",
            [attributes.index_name("price")],
        )
        assert "recommender_attr_number" in cursor.fetchone()[0]


# --- Admin preview -----------------------------------------------------------------------------


def test_the_admin_previews_a_scenario_for_a_user(shop, admin_client):
    scenario = Scenario.objects.create(name="home", k=5, filter='category == "tea"')
    Promotion.objects.create(scenario=scenario, name="red", filter='"red" in colors', share=0.2)
    page = admin_client.get(f"/admin/recommender/scenario/{scenario.pk}/change/")
    assert f"/admin/recommender/scenario/{scenario.pk}/preview/" in page.content.decode()
    preview = admin_client.get(
        f"/admin/recommender/scenario/{scenario.pk}/preview/", {"user": "alice"}
    )
    assert preview.status_code == 200
    results = preview.context["results"]
    assert len(results) == 5 and {r.item.category for r in results} == {"tea"}
    assert sum(1 for r in results if r.promotion == "red") == 1
    missing = admin_client.get(
        f"/admin/recommender/scenario/{scenario.pk}/preview/", {"user": "nobody"}
    )
    assert "nobody" in missing.context["error"]


def test_the_admin_refuses_a_scenario_with_a_bad_rule(admin_client):
    response = admin_client.post(
        "/admin/recommender/scenario/add/",
        {
            "name": "bad",
            "filter": "price <",
            "boost": "",
            "demotion": "0.5",
            "sources": "[]",
            "blend_weights": "{}",
            "use_learned_ranker": "on",
            "promotions-TOTAL_FORMS": "0",
            "promotions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "column" in str(response.context["adminform"].form.errors["filter"])
    assert not Scenario.objects.filter(name="bad").exists()


# --- A scenario's own encoder space --------------------------------------------------------------


def test_a_scenario_serves_from_its_own_space_and_events_keep_its_profiles(
    shop, make_space, monkeypatch
):
    other = make_space("other", dim=32, activate=False)
    embedding.embed_items(other, [item.pk for item in shop])
    spaces.mark_ready_if_complete(other)
    other.refresh_from_db()
    assert other.status == "ready", other.status
    Scenario.objects.create(name="home", space=other)
    alice = EndUser.objects.get(external_id="alice")
    served = []
    real = pipeline.candidate_pool

    def spy(request):
        pool = real(request)
        served.append(pool.space.name if pool.space else None)
        return pool

    monkeypatch.setattr(pipeline, "candidate_pool", spy)
    body = get("/users/alice/recommendations", scenario="home").json()
    get("/users/alice/recommendations").json()
    assert ids(body) and served == ["other", "fast"]
    # An event folds into the scenario space's profile too.
    before = profiles.load(alice, other).events
    response = APIClient().post(
        f"{API}/behaviours", {"user": "alice", "item": "i05", "kind": "click"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert profiles.load(alice, other).events == before + 1


# --- Retention -----------------------------------------------------------------------------------


def test_events_past_the_retention_stop_counting_and_are_deleted_only_when_asked(shop, settings):
    from recommender.tasks import expire_behaviours

    alice = EndUser.objects.get(external_id="alice")
    old = Behaviour.objects.create(
        user=alice, item=shop[9], kind="purchase", occurred_at=timezone.now() - timedelta(days=90)
    )
    assert profiles.recompute(alice.pk, shop_space()).events == 2
    settings.RECOMMENDER_BEHAVIOUR_RETENTION_DAYS = 30
    assert profiles.recompute(alice.pk, shop_space()).events == 1
    assert expire_behaviours() == {"deleted": 0, "enabled": False}
    assert Behaviour.objects.filter(pk=old.pk).exists()
    settings.RECOMMENDER_DELETE_EXPIRED_BEHAVIOURS = True
    assert expire_behaviours()["deleted"] == 1
    assert not Behaviour.objects.filter(pk=old.pk).exists()


def shop_space():
    from recommender import spaces

    return spaces.active_space()
