"""recommender.dbroute without a standby (the single-node default), and the request parts
it reads; tests/cluster/test_topology.py drives it against a real standby."""

import json

from django.db import DEFAULT_DB_ALIAS, connections
from django.test import RequestFactory
from django.urls import resolve

from recommender import dbroute


def test_without_a_replica_reads_use_the_default_connection():
    assert not dbroute.replica_configured()
    assert dbroute.read_connection() is connections[DEFAULT_DB_ALIAS]
    with dbroute.serving(["u-1"]):
        assert dbroute.read_connection() is connections[DEFAULT_DB_ALIAS]
        assert dbroute.ReplicaRouter().db_for_read(None) == DEFAULT_DB_ALIAS


def test_writes_and_migrations_go_to_the_primary():
    router = dbroute.ReplicaRouter()
    with dbroute.serving(["u-1"]):
        assert router.db_for_write(None) == DEFAULT_DB_ALIAS
    assert router.allow_migrate(DEFAULT_DB_ALIAS, "recommender")
    assert not router.allow_migrate(dbroute.REPLICA, "recommender")


def test_a_write_names_its_users_from_the_body_and_route():
    factory = RequestFactory()
    batch = factory.post(
        "/api/v1/behaviours/batch",
        json.dumps({"events": [{"user": "a", "kind": "view"}, {"user": "b", "kind": "like"}]}),
        content_type="application/json",
    )
    batch.resolver_match = resolve("/api/v1/behaviours/batch")
    assert dbroute.request_users(batch, {}) == {"a", "b"}
    delete = factory.delete("/api/v1/users/u-9")
    delete.resolver_match = resolve("/api/v1/users/u-9")
    assert dbroute.request_users(delete, delete.resolver_match.kwargs) == {"u-9"}


def test_a_read_names_its_user_from_the_route_or_query():
    factory = RequestFactory()
    listed = factory.get("/api/v1/users/u-3/recommendations")
    listed.resolver_match = resolve("/api/v1/users/u-3/recommendations")
    assert dbroute.request_users(listed, listed.resolver_match.kwargs) == {"u-3"}
    item = factory.get("/api/v1/items/sku-1")
    item.resolver_match = resolve("/api/v1/items/sku-1")
    assert dbroute.request_users(item, item.resolver_match.kwargs) == set()
    history = factory.get("/api/v1/behaviours", {"user": "u-4"})
    history.resolver_match = resolve("/api/v1/behaviours")
    assert dbroute.request_users(history, {}) == {"u-4"}
