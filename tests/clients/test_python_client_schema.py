"""The Python client (clients/python) stays in step with the API's OpenAPI schema: every
request its methods send is an operation of the schema, and every operation of the schema
is sent by some method or named in NOT_COVERED with the reason."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from drf_spectacular.generators import SchemaGenerator
from recsite_client import AsyncClient, Client

ROOT = Path(__file__).resolve().parents[2]
RID = "0f8fad5b-d9cb-469f-a165-70867728950e"

# Operations of the schema the client does not call, and why.
NOT_COVERED = {
    ("GET", "/api/schema/"): "the OpenAPI schema itself, for tools, not an API call",
}

# One call of every public method of the client (sample arguments).
CALLS = {
    "get_item": (("sku-1",), {}),
    "list_items": ((), {"limit": 5, "offset": 0}),
    "create_item": (("sku-1", "A coat"), {"category": "clothing"}),
    "update_item": (("sku-1",), {"title": "A new coat"}),
    "replace_item": (("sku-1", "A coat"), {}),
    "delete_item": (("sku-1",), {}),
    "bulk_upsert_items": (([{"id": "sku-2", "title": "Shoes"}],), {}),
    "get_user": (("u-1",), {}),
    "list_users": ((), {}),
    "create_user": (("u-1",), {"attributes": {"age": 30}}),
    "update_user": (("u-1", {"age": 31}), {}),
    "replace_user": (("u-1",), {}),
    "export_user": (("u-1",), {}),
    "forget_user": (("u-1",), {}),
    "track": (("u-1", "sku-1", "click"), {"recommendation_id": RID, "position": 1}),
    "track_batch": (([{"user": "u-1", "item": "sku-1", "kind": "view"}],), {}),
    "impressions": (("u-1", RID, ["sku-1", "sku-2"]), {}),
    "events": (("u-1",), {}),
    "recommend": (("u-1",), {"k": 5, "params": {"max_price": 300}, "recommendation_id": RID}),
    "similar": (("sku-1",), {"k": 3}),
    "search": (("coat",), {"user": "u-1"}),
    "session": ((), {"positive": ["sku-1"], "text": "a warm coat"}),
    "shopper_token": (("u-1",), {}),
    "scenario_metrics": ((), {"days": 7}),
    "variant_metrics": ((), {}),
    "source_metrics": ((), {}),
    "position_metrics": ((), {}),
    "coverage_metrics": ((), {}),
    "experiment_metrics": (("colour-test",), {}),
    "health": ((), {}),
    "health_detail": ((), {}),
}
LIFECYCLE = {"close", "aclose"}


@pytest.fixture(scope="module")
def operations() -> dict[tuple[str, str], dict]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        (method.upper(), path): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    }


def _template(operations, method: str, path: str) -> tuple[str, str] | None:
    for known_method, template in operations:
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if known_method == method and re.match(pattern, path):
            return known_method, template
    return None


def _public(cls) -> set[str]:
    return {
        name
        for name, _ in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") and name not in LIFECYCLE
    }


@pytest.fixture(scope="module")
def sent() -> dict[str, list[httpx.Request]]:
    """The requests each method sends (to a transport that answers 200 ``{}``)."""
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json={})

    client = Client("http://api.test", api_key="rk_x_y", transport=httpx.MockTransport(answer))
    by_method = {}
    for name, (args, kwargs) in CALLS.items():
        requests.clear()
        getattr(client, name)(*args, **kwargs)
        by_method[name] = list(requests)
    return by_method


def test_every_public_method_is_exercised_here():
    assert _public(Client) == set(CALLS), "add the new method to CALLS"


def test_the_async_client_has_the_same_methods_and_signatures():
    assert _public(AsyncClient) == _public(Client)
    for name in _public(Client):
        assert inspect.signature(getattr(AsyncClient, name)) == inspect.signature(
            getattr(Client, name)
        ), name
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name)), name


def test_the_sync_client_is_generated_from_the_async_one():
    done = subprocess.run(
        [sys.executable, str(ROOT / "clients" / "python" / "unasync.py"), "--check"], check=False
    )
    assert done.returncode == 0, "run python clients/python/unasync.py"


def test_every_request_the_client_sends_is_in_the_schema(operations, sent):
    for name, requests in sent.items():
        assert requests, f"{name} sent nothing"
        for request in requests:
            found = _template(operations, request.method, request.url.path)
            assert found, f"{name}: {request.method} {request.url.path} is not in the schema"


def test_every_operation_of_the_schema_is_covered_or_excused(operations, sent):
    covered = {
        _template(operations, request.method, request.url.path)
        for requests in sent.values()
        for request in requests
    }
    missing = set(operations) - covered - set(NOT_COVERED)
    assert not missing, f"operations the client does not call: {sorted(missing)}"
    assert not (covered & set(NOT_COVERED)), "NOT_COVERED names an operation the client calls"
    assert set(NOT_COVERED) <= set(operations), "NOT_COVERED names an operation that is gone"


def _parameter_names(operation: dict, where: str) -> set[str]:
    return {p["name"] for p in operation.get("parameters", []) if p["in"] == where}


def test_query_parameters_and_body_fields_are_known_to_the_schema(operations, sent):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    for name, requests in sent.items():
        for request in requests:
            key = _template(operations, request.method, request.url.path)
            operation = operations[key]
            unknown = set(request.url.params) - _parameter_names(operation, "query")
            assert not unknown, f"{name}: query parameters not in the schema: {unknown}"
            if request.content:
                ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                fields = set(components[ref.rsplit("/", 1)[1]]["properties"])
                assert set(json.loads(request.content)) <= fields, name
