"""The Python client (clients/python) against a live gunicorn serving pytest's test
database: every method, errors, retries (a local server answering 503 with Retry-After),
and idempotent event batches."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from django.db import connection
from recsite_client import (
    AsyncClient,
    BadRequest,
    Client,
    ConnectionFailed,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
)
from recsite_client._http import RetryPolicy, retry_after

from recommender import apikeys, spaces
from recommender.models import Behaviour, EndUser
from recommender.serving import served_lists
from recommender.spaces import embedding
from recsite import testing

ROOT = Path(__file__).resolve().parents[2]
live = pytest.mark.django_db(transaction=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    """gunicorn on pytest's test database; its base URL."""
    port = _free_port()
    env = testing.environ(
        DJANGO_SETTINGS_MODULE="tests.settings",
        RECSITE_DATABASE_NAME=connection.settings_dict["NAME"],
        RECOMMENDER_EMBED_ON_SAVE="0",
    )
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    process = testing.start_gunicorn(env, log, port=port, workers=2)
    with testing.running(process):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def keys(db):
    """Plain-text API keys by scope."""
    return {scope: apikeys.create_key(f"client-{scope}", scope)[1] for scope in apikeys.SCOPES}


@pytest.fixture
def shop(space, make_items):
    """Eight embedded items and a user, alice."""
    items = make_items(8, category="clothing", attributes={"price": 100})
    embedding.embed_items(space, [item.pk for item in items])
    EndUser.objects.create(external_id="alice")
    # The server's processes check for a new active space every CHECK_S seconds (an
    # earlier test's space, flushed since, may still be cached there).
    time.sleep(spaces.CHECK_S + 0.2)
    return items


@pytest.fixture
def client(server, keys):
    with Client(server, api_key=keys["admin"], retries=0) as api:
        yield api


@live
def test_items(client):
    created = client.create_item("coat-1", "A warm coat", category="clothing", tags=["winter"])
    assert created["id"] == "coat-1" and created["tags"] == ["winter"]
    assert client.get_item("coat-1")["title"] == "A warm coat"
    assert client.update_item("coat-1", title="A warmer coat")["title"] == "A warmer coat"
    assert client.replace_item("coat-1", "A coat", category="outer")["category"] == "outer"
    page = client.list_items(limit=10)
    assert page["count"] == 1 and page["results"][0]["id"] == "coat-1"
    result = client.bulk_upsert_items(
        [{"id": "coat-1", "description": "down"}, {"id": "hat-1", "title": "A hat"}]
    )
    assert result == {"created": 1, "updated": 1}
    assert client.delete_item("hat-1") is None
    assert client.get_item("hat-1")["is_active"] is False
    with pytest.raises(BadRequest) as caught:
        client.create_item("coat-1", "again")
    assert caught.value.status == 400 and "id" in caught.value.errors
    with pytest.raises(NotFound):
        client.get_item("no-such-item")


@live
def test_users(client):
    assert client.create_user("bob", {"age": 30})["attributes"] == {"age": 30}
    assert client.get_user("bob")["id"] == "bob"
    assert client.update_user("bob", {"age": 31})["attributes"] == {"age": 31}
    assert client.replace_user("bob", {"city": "Hangzhou"})["attributes"] == {"city": "Hangzhou"}
    assert [user["id"] for user in client.list_users()["results"]] == ["bob"]
    client.track("bob", None, "search", text="羽绒服")
    exported = client.export_user("bob")
    assert json.dumps(exported, ensure_ascii=False).count("羽绒服") >= 1
    assert client.forget_user("bob") is None
    with pytest.raises(NotFound):
        client.get_user("bob")


@live
def test_lists_events_and_impressions(client, shop):
    first = client.recommend("alice", k=3, filter="price < $max", params={"max": 500})
    assert len(first["items"]) == 3 and first["user"] == "alice"
    rid = first["recommendation_id"]
    assert rid
    shown = [item["id"] for item in first["items"]]
    following = client.recommend("alice", k=3, recommendation_id=rid)
    assert not {item["id"] for item in following["items"]} & set(shown)

    result = client.impressions("alice", rid, shown)
    assert result["created"] == 3
    recorded = client.track("alice", shown[1], "click", recommendation_id=rid, position=2)
    assert recorded["created"] and recorded["behaviour"]["position"] == 2
    assert recorded["behaviour"]["event_id"]  # the client gave it one
    stored = client.events("alice")
    assert stored["count"] == 4
    positions = sorted(e["position"] for e in stored["results"] if e["kind"] == "impression")
    assert positions == [1, 2, 3]

    assert client.similar("sku-0", k=3)["items"]
    assert client.search("羽绒服", user="alice", k=3)["items"]
    assert client.session(positive=["sku-1"], negative=["sku-2"], text="羽绒服", k=3)["items"]
    with pytest.raises(BadRequest) as caught:
        client.recommend("alice", filter="price <")
    assert "filter" in caught.value.errors


@live
def test_an_idempotent_batch_sent_twice_counts_once(client, shop):
    events = [
        {"user": "alice", "item": f"sku-{i}", "kind": "view", "event_id": f"ev-{i}"}
        for i in range(3)
    ]
    assert client.track_batch(events)["created"] == 3
    again = client.track_batch(events)
    assert again["created"] == 0 and again["duplicates"] == 3
    assert Behaviour.objects.filter(user__external_id="alice").count() == 3


class LosesFirstAnswer(httpx.HTTPTransport):
    """Forwards every request, but answers the first with a 503 (as a gateway that lost
    the server's answer would): the server did record the first attempt."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def handle_request(self, request):
        response = super().handle_request(request)
        self.sent += 1
        if self.sent == 1:
            response.read()
            return httpx.Response(503, headers={"Retry-After": "0"})
        return response


@live
def test_a_retried_batch_with_generated_event_ids_records_each_event_once(server, keys, shop):
    transport = LosesFirstAnswer()
    with Client(server, api_key=keys["events"], transport=transport) as api:
        result = api.track_batch([{"user": "alice", "item": "sku-1", "kind": "view"}] * 2)
    assert transport.sent == 2
    assert result["created"] == 0 and result["duplicates"] == 2
    assert Behaviour.objects.filter(user__external_id="alice").count() == 2


@live
def test_tokens_metrics_and_health(client, server, keys, shop):
    token = client.shopper_token("carol")
    assert token["user"] == "carol" and token["expires_in"] > 0
    with Client(server, shopper_token=token["token"]) as browser:
        listed = browser.recommend("carol", k=2)
        assert listed["user"] == "carol"
        browser.impressions(
            "carol", listed["recommendation_id"], [i["id"] for i in listed["items"]]
        )
        with pytest.raises(Forbidden):
            browser.recommend("alice")
    served_lists.drain()  # the worker's periodic task: the served lists into the database
    days = client.scenario_metrics(7)
    assert sum(day["impressions"] for day in days) == len(listed["items"])
    for method in ("variant_metrics", "source_metrics", "position_metrics", "coverage_metrics"):
        assert isinstance(getattr(client, method)(days=7), list)
    with pytest.raises(NotFound):
        client.experiment_metrics("no-such-experiment")
    assert client.health() == {"ok": True}
    assert "ok" in client.health_detail()
    with Client(server, api_key="rk_bad_key") as stranger, pytest.raises(Unauthorized):
        stranger.get_item("sku-0")
    with Client(server, api_key=keys["read"]) as reader, pytest.raises(Forbidden):
        reader.forget_user("alice")


@live
def test_the_async_client(server, keys, shop):
    async def scenario():
        async with AsyncClient(server, api_key=keys["admin"]) as api:
            await api.create_item("coat-9", "A coat")
            listed, item = await asyncio.gather(api.recommend("alice", k=2), api.get_item("coat-9"))
            await api.track(
                "alice", "sku-0", "click", recommendation_id=listed["recommendation_id"], position=1
            )
            return listed, item, await api.events("alice")

    listed, item, events = asyncio.run(scenario())
    assert len(listed["items"]) == 2 and item["title"] == "A coat"
    assert events["count"] == 1


# --- retries, against a tiny local server ----------------------------------------------------


class Flaky:
    """A local HTTP server that answers the planned (status, headers) in turn, then 200."""

    def __init__(self, plan: list[tuple[int, dict[str, str]]]):
        self.plan = list(plan)
        self.requests: list[tuple[str, str, float]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                owner.requests.append((self.command, self.path, time.monotonic()))
                status, headers = owner.plan.pop(0) if owner.plan else (200, {})
                payload = json.dumps(
                    {"id": "sku-1", "title": "ok"} if status == 200 else {}
                ).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def flaky():
    servers = []

    def make(*plan):
        servers.append(Flaky(list(plan)))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_a_503_with_retry_after_is_waited_for_and_retried(flaky):
    server = flaky((503, {"Retry-After": "1"}))
    with Client(server.url) as api:
        started = time.monotonic()
        assert api.get_item("sku-1")["title"] == "ok"
    assert len(server.requests) == 2
    assert server.requests[1][2] - server.requests[0][2] >= 0.95
    assert time.monotonic() - started >= 0.95
    assert server.requests[0][1] == "/api/v1/items/sku-1/"


def test_retry_after_as_an_http_date(flaky):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    assert 0 < retry_after(httpx.Response(503, headers={"Retry-After": when})) <= 2
    server = flaky((429, {"Retry-After": when}))
    with Client(server.url) as api:
        api.get_user("u-1")
    assert len(server.requests) == 2 and server.requests[1][2] - server.requests[0][2] >= 0.5


def test_a_post_without_event_ids_is_not_retried(flaky):
    server = flaky((503, {"Retry-After": "0"}))
    with Client(server.url) as api, pytest.raises(ServerError) as caught:
        api.create_item("sku-1", "A coat")
    assert caught.value.status == 503
    assert len(server.requests) == 1


def test_events_are_retried_and_keep_their_ids(flaky):
    server = flaky((502, {}), (504, {}))
    with Client(server.url, backoff=0.01) as api:
        api.track("u-1", "sku-1", "view")
    assert [r[0] for r in server.requests] == ["POST"] * 3


def test_retries_run_out(flaky):
    server = flaky(*[(429, {"Retry-After": "0"})] * 3)
    with Client(server.url, retries=2) as api, pytest.raises(RateLimited) as caught:
        api.get_item("sku-1")
    assert len(server.requests) == 3 and caught.value.retry_after == 0


def test_connection_errors_are_retried_then_raised():
    with Client(f"http://127.0.0.1:{_free_port()}", retries=2, backoff=0.01) as api:
        with pytest.raises(ConnectionFailed):
            api.health()


def test_the_async_client_retries_too(flaky):
    server = flaky((503, {"Retry-After": "0"}))

    async def get():
        async with AsyncClient(server.url) as api:
            return await api.get_item("sku-1")

    assert asyncio.run(get())["title"] == "ok"
    assert len(server.requests) == 2


def test_backoff_is_exponential_with_jitter():
    policy = RetryPolicy(backoff=0.5, max_backoff=3)
    delays = [policy.delay(attempt, None) for attempt in range(8) for _ in range(20)]
    assert all(0 <= delay <= 3 for delay in delays)
    assert len(set(delays)) > 10
