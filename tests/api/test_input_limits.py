"""Hostile or broken input gets a 4xx naming the problem, never a 500, never a write."""

import json

import pytest
from rest_framework.test import APIClient

from recommender.models import Behaviour, EndUser, Item

pytestmark = pytest.mark.django_db
API = "/api/v1"


@pytest.fixture
def api(settings):
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    Item.objects.create(external_id="sku-1", title="女士加长款保暖羽绒服")
    EndUser.objects.create(external_id="u-1")
    return APIClient()


def post_raw(api, path, body: str | bytes):
    return api.generic("POST", path, body, content_type="application/json")


def test_deeply_nested_json_is_refused(api):
    deep = "[" * 5000 + "]" * 5000
    response = post_raw(api, f"{API}/behaviours", deep)
    assert response.status_code == 400 and "nested" in response.json()["detail"]
    nested = {"user": "u-1", "item": "sku-1", "kind": "view", "context": {}}
    level = nested["context"]
    for _ in range(12):
        level["x"] = {}
        level = level["x"]
    response = api.post(f"{API}/behaviours", nested, format="json")
    assert response.status_code == 400 and "context" in response.json()
    assert Behaviour.objects.count() == 0


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(api, number):
    body = f'{{"user": "u-1", "item": "sku-1", "kind": "rating", "value": {number}}}'
    assert post_raw(api, f"{API}/behaviours", body).status_code == 400
    response = api.get(f"{API}/users/u-1/recommendations", {"diversity": number.lower()})
    assert response.status_code == 400 and "diversity" in response.json()


def test_oversized_body_is_refused(api):
    events = [{"user": "u-1", "item": "sku-1", "kind": "view", "text": "x" * 1000}] * 3000
    response = post_raw(api, f"{API}/behaviours/batch", json.dumps({"events": events}))
    assert response.status_code in (400, 413)
    assert Behaviour.objects.count() == 0


def test_batch_over_the_limit_is_refused(api):
    events = [{"user": "u-1", "item": "sku-1", "kind": "view"}] * 5001
    response = api.post(f"{API}/behaviours/batch", {"events": events}, format="json")
    assert response.status_code == 400 and "events" in response.json()
    assert Behaviour.objects.count() == 0


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("a\x00b", False),  # NUL byte
        ("\ud800 lone surrogate", False),
        ("想要一件外套 🧥 with hood, très chaud", True),  # emoji, mixed scripts
        ("x" * 2001, False),  # too long
    ],
)
def test_strings_are_checked(api, text, ok):
    body = json.dumps({"user": "u-1", "kind": "search", "text": text})
    response = post_raw(api, f"{API}/behaviours", body)
    assert response.status_code == (201 if ok else 400), response.content
    if not ok:
        assert "text" in response.json()
    assert Behaviour.objects.count() == (1 if ok else 0)


def test_unknown_fields_and_wrong_types(api):
    response = api.post(f"{API}/items", {"id": "n1", "title": "t", "colour": "red"}, format="json")
    assert response.status_code == 400 and response.json() == {"colour": ["unknown field"]}
    response = api.post(
        f"{API}/items", {"id": "n1", "title": "t", "tags": "notalist"}, format="json"
    )
    assert response.status_code == 400 and "tags" in response.json()
    response = post_raw(api, f"{API}/items", "not json at all")
    assert response.status_code == 400
    response = api.generic("POST", f"{API}/items", "id=1", content_type="text/plain")
    assert response.status_code == 415
    assert not Item.objects.filter(external_id="n1").exists()


def test_existing_ids_are_a_400_not_a_500(api):
    response = api.post(f"{API}/items", {"id": "sku-1", "title": "again"}, format="json")
    assert response.status_code == 400 and "id" in response.json()
    response = api.post(f"{API}/users", {"id": "u-1"}, format="json")
    assert response.status_code == 400 and "id" in response.json()


def test_values_postgres_cannot_store_are_refused(api):
    for body in (
        '{"id": "z1", "title": "t", "attributes": {"note": "a\\u0000b"}}',
        '{"id": "z1", "title": "t", "attributes": {"k\\u0000": 1}}',
        '{"id": "z1", "title": "t", "attributes": {"price": 1e999}}',
    ):
        response = post_raw(api, f"{API}/items", body)
        assert response.status_code == 400, (body, response.content)
    assert not Item.objects.filter(external_id="z1").exists()


def test_huge_pagination_values_are_clamped(api):
    for query in ({"limit": 10**20}, {"offset": 10**20}, {"offset": -5}):
        assert api.get(f"{API}/items", query).status_code == 200


def test_an_id_cannot_change_and_attributes_must_be_an_object(api):
    response = api.patch(f"{API}/items/sku-1", {"id": "sku-2"}, format="json")
    assert response.status_code == 400 and "id" in response.json()
    response = api.patch(f"{API}/users/u-1", {"attributes": [1, 2]}, format="json")
    assert response.status_code == 400 and "attributes" in response.json()
    assert Item.objects.filter(external_id="sku-1").exists()
