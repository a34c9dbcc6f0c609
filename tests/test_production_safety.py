"""Safe defaults: the open-site checks, masked error reports, the demo admin guard,
shopper tokens for browsers, cache outages, and the keyword index."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.admin.models import LogEntry
from django.core import signing
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.views.debug import ExceptionReporter
from rest_framework.test import APIClient

from recommender import apikeys, checks, shopper_tokens, spaces
from recommender.ingest import privacy
from recommender.models import Behaviour, EndUser, Item
from recommender.serving import filters, keywords, popularity
from recommender.spaces import embedding
from recsite.reporting import SecretURLFilter

pytestmark = pytest.mark.django_db
API = "/api/v1"
ROOT = Path(__file__).resolve().parent.parent

# A Redis nobody listens on: what the cache sees during an outage.
DEAD_REDIS = {
    "default": {
        "BACKEND": "recsite.cache.ReusedClientRedisCache",
        "LOCATION": "unix:///nonexistent/recsite-test-redis.sock?db=1",
    }
}


def _production_env(**overrides) -> dict:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "shop.example.com",
        "DJANGO_SETTINGS_MODULE": "recsite.settings",
        "RECSITE_AUTOSTART_SERVICES": "0",
    }
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


# --- Safe defaults ------------------------------------------------------------------------


def test_defaults_are_debug_off_and_keys_required():
    script = (
        "from django.conf import settings; import django; django.setup(); "
        "from recommender.conf import conf; "
        "print(settings.DEBUG, conf.REQUIRE_API_KEY, "
        "settings.RECSITE_STOREFRONT, conf.PUBLIC_API_DOCS)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
        env=_production_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "False", "False"]


@pytest.mark.parametrize(
    "extra",
    [{"DEBUG": "1"}, {"RECOMMENDER_REQUIRE_API_KEY": "0"}],
    ids=["debug-on", "keys-off"],
)
def test_deploy_check_refuses_an_open_site_on_a_public_host(extra):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        capture_output=True, text=True, cwd=ROOT, env=_production_env(**extra),
    )  # fmt: skip
    assert result.returncode != 0
    assert "recommender.E00" in result.stderr


def test_open_site_check_allows_the_local_demo(settings):
    settings.DEBUG = True
    settings.RECOMMENDER_REQUIRE_API_KEY = False
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
    assert checks.open_site_check() == []
    settings.ALLOWED_HOSTS = ["127.0.0.1", "*"]
    assert {error.id for error in checks.open_site_check()} == {
        "recommender.E001",
        "recommender.E002",
    }


def test_gunicorn_entry_point_refuses_to_start_an_open_site():
    result = subprocess.run(
        [sys.executable, "-c", "import recsite.wsgi"],
        capture_output=True, text=True, cwd=ROOT,
        env=_production_env(RECOMMENDER_REQUIRE_API_KEY="0"),
    )  # fmt: skip
    assert result.returncode != 0
    assert "recommender.E002" in result.stderr


def _error_reports(request, url: str) -> tuple[str, str]:
    """The text and HTML error reports of an exception raised with ``url`` in a local."""
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        reporter = ExceptionReporter(request, *sys.exc_info())
        return reporter.get_traceback_text(), reporter.get_traceback_html()


def test_error_reports_mask_every_url_secret(rf):
    secret = "s3cret-Pa55"
    with override_settings(
        DATABASE_URL=f"postgres://shop:{secret}@db.internal:5432/shop",
        CELERY_BROKER_URL=f"redis://:{secret}@redis.internal:6379/0",
        CELERY_RESULT_BACKEND=f"redis://:{secret}@redis.internal:6379/1",
        CACHE_URL=f"rediss://cache:{secret}@cache.internal:6380/1",
        CACHES={"default": {**DEAD_REDIS["default"], "LOCATION": f"redis://:{secret}@c:6379"}},
        SOME_SERVICE_ENDPOINT=f"https://user:{secret}@api.partner.example/v1",
    ):
        text, html = _error_reports(rf.get("/boom"), f"postgres://shop:{secret}@db/shop")
        safe = SecretURLFilter().get_safe_settings()
    assert secret not in text and secret not in html
    assert secret not in repr(safe)
    assert "db.internal" not in repr(safe["DATABASE_URL"])


def test_demo_admin_refuses_a_real_database_without_force(settings, django_user_model):
    settings.RECSITE_EMBEDDED_POSTGRES = False
    with pytest.raises(CommandError, match="--force"):
        call_command("demo_admin")
    assert not django_user_model.objects.filter(username="admin").exists()
    call_command("demo_admin", "--force")
    assert django_user_model.objects.get(username="admin").is_superuser


# --- Shopper tokens -----------------------------------------------------------------------


@pytest.fixture
def shop(settings):
    settings.RECOMMENDER_REQUIRE_API_KEY = True
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    Item.objects.create(external_id="tea", title="有机绿茶礼盒", category="food")
    Item.objects.create(external_id="mug", title="Ceramic mug", category="home")
    EndUser.objects.create(external_id="alice")
    EndUser.objects.create(external_id="bob")
    cache.clear()
    return settings


def _shopper_client(user: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Shopper {shopper_tokens.issue(user)}")
    return client


def _key_client(scope: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {apikeys.create_key(scope, scope)[1]}")
    return client


def test_backend_issues_shopper_tokens_with_a_write_key(shop):
    response = _key_client("write").post(f"{API}/tokens", {"user": "carol"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["user"] == "carol" and body["expires_in"] == shopper_tokens.ttl_seconds()
    assert shopper_tokens.verify(body["token"]).user == "carol"
    assert EndUser.objects.filter(external_id="carol").exists()  # ready for recommendations
    assert (
        _key_client("read").post(f"{API}/tokens", {"user": "x"}, format="json").status_code == 403
    )
    assert APIClient().post(f"{API}/tokens", {"user": "x"}, format="json").status_code in (401, 403)


def test_shopper_token_reaches_its_own_lists_and_events(shop):
    client = _shopper_client("alice")
    event = {"user": "alice", "item": "tea", "kind": "view"}
    assert client.post(f"{API}/behaviours", event, format="json").status_code == 201
    assert client.get(f"{API}/behaviours", {"user": "alice"}).status_code == 200
    assert client.get(f"{API}/items/tea").status_code == 200
    assert client.get(f"{API}/search", {"q": "绿茶", "user": "alice"}).status_code != 403
    assert client.get(f"{API}/users/alice").status_code == 200


def test_shopper_token_cannot_reach_another_shopper_or_the_catalogue(shop):
    client = _shopper_client("alice")
    event = {"user": "bob", "item": "tea", "kind": "purchase"}
    assert client.post(f"{API}/behaviours", event, format="json").status_code == 403
    assert client.get(f"{API}/behaviours", {"user": "bob"}).status_code == 403
    assert client.get(f"{API}/users/bob/recommendations").status_code == 403
    assert client.get(f"{API}/search", {"q": "茶", "user": "bob"}).status_code == 403
    assert client.get(f"{API}/users").status_code == 403
    assert client.get(f"{API}/users/alice/export").status_code == 403
    assert client.delete(f"{API}/users/alice").status_code == 403
    batch = {"events": [{"user": "bob", "item": "tea", "kind": "view"}]}
    assert client.post(f"{API}/behaviours/batch", batch, format="json").status_code == 403
    bulk = {"items": [{"id": "tea", "title": "cheap"}]}
    assert client.post(f"{API}/items/bulk", bulk, format="json").status_code == 403
    assert client.post(f"{API}/tokens", {"user": "bob"}, format="json").status_code == 403
    assert not Behaviour.objects.filter(user__external_id="bob").exists()


def test_forged_or_expired_shopper_tokens_are_refused(shop):
    token = shopper_tokens.issue("alice")
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    other_key = signing.dumps(
        {"u": "alice"}, key="not-the-secret", salt="recommender.shopper-token"
    )
    for bad in (forged, shopper_tokens.PREFIX + other_key, "st_garbage"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Shopper {bad}")
        assert client.get(f"{API}/users/alice/recommendations").status_code == 401
    shop.RECOMMENDER_SHOPPER_TOKEN_TTL = 1
    time.sleep(2.1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Shopper {token}")
    assert client.get(f"{API}/users/alice/recommendations").status_code == 401


def test_storefront_backend_issues_tokens_only_for_listed_shoppers(shop):
    client = APIClient(enforce_csrf_checks=False)
    response = client.post("/shop/token", {"user": "alice"}, format="json")
    assert response.status_code == 200
    assert shopper_tokens.verify(response.json()["token"]).user == "alice"
    assert client.post("/shop/token", {"user": "nobody"}, format="json").status_code == 404
    assert client.post("/shop/token", {"user": "a/b"}, format="json").status_code == 400
    listed = client.get("/shop/shoppers").json()["results"]
    assert [user["id"] for user in listed] == ["alice", "bob"]


def test_storefront_hides_withdrawn_items(shop):
    Item.objects.filter(external_id="mug").update(is_active=False)
    assert APIClient().get("/item/mug/").status_code == 404
    assert APIClient().get("/item/tea/").status_code == 200


# --- Cache outages ------------------------------------------------------------------------


@pytest.fixture
def served(settings, hashing_space):
    """A small catalogue with an active space (the hashing encoder: no model download)."""
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    for n, title in enumerate(["绿茶礼盒", "红茶礼盒", "陶瓷茶杯", "羊毛围巾", "皮革手套"]):
        Item.objects.create(external_id=f"i{n}", title=title, category="shop")
    embedding.embed_items(hashing_space, list(Item.objects.values_list("pk", flat=True)))
    EndUser.objects.create(external_id="u1")
    APIClient().post(
        f"{API}/behaviours", {"user": "u1", "item": "i0", "kind": "like"}, format="json"
    )
    return settings


def test_redis_down_still_serves_when_the_throttle_fails_open(served):
    with override_settings(CACHES=DEAD_REDIS):
        spaces.spaces_changed()
        client = APIClient()
        response = client.get(f"{API}/users/u1/recommendations", {"k": 3})
        assert response.status_code == 200, response.content
        assert len(response.json()["items"]) == 3
        event = {"user": "u1", "item": "i1", "kind": "view"}
        assert client.post(f"{API}/behaviours", event, format="json").status_code == 201
        assert client.get(f"{API}/health").status_code == 200


def test_redis_down_answers_503(served):
    served.RECOMMENDER_THROTTLE_FAIL_OPEN = False
    with override_settings(CACHES=DEAD_REDIS):
        response = APIClient().get(f"{API}/users/u1/recommendations", {"k": 3})
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert "cache" in response.json()["detail"]


def test_a_non_redis_cache_throttles_instead_of_failing(served):
    served.REST_FRAMEWORK = {**served.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api": "2/min"}}
    local = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with override_settings(CACHES=local):
        client = APIClient()
        codes = [client.get(f"{API}/items").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


# --- Keyword matches through an index -------------------------------------------------------


def test_keyword_matches_use_the_bigram_index(served):
    words = keywords.keyword_matches("茶礼盒", 10, filters.Filters())
    titles = set(Item.objects.filter(pk__in=words).values_list("title", flat=True))
    assert titles == {"绿茶礼盒", "红茶礼盒"}
    # One statement for every keyword, its bigram condition on the index (a tiny table
    # is scanned otherwise, so the other ways in are switched off, the is_active index
    # among them by a filter that does not ask for it).
    unfiltered = filters.Filters(active_only=False, recommendable=False)
    sql, params = keywords.keyword_sql(["礼盒", "绿茶"], 10, unfiltered)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "item_keyword_bigrams" in plan, plan


def test_keyword_matches_are_case_insensitive_substrings(served):
    Item.objects.create(external_id="e1", title="Wool SCARF, grey", tags=["winter"])
    found = keywords.keyword_matches("scarf", 10, filters.Filters())
    assert Item.objects.get(external_id="e1").pk in found
    assert keywords.keyword_matches("Winter", 10, filters.Filters())


# --- A long history costs a bounded read ------------------------------------------------------


def test_a_long_history_is_read_through_a_bounded_window(served):
    served.RECOMMENDER_SEEN_WINDOW = 300
    user = EndUser.objects.get(external_id="u1")
    old, recent = Item.objects.get(external_id="i3"), Item.objects.get(external_id="i4")
    start = timezone.now() - timedelta(days=30)
    rows = [Behaviour(user=user, item=old, kind="view", occurred_at=start)]
    rows += [
        Behaviour(user=user, item=recent, kind="view", occurred_at=start + timedelta(hours=n))
        for n in range(1, 1201)
    ]
    Behaviour.objects.bulk_create(rows)
    with CaptureQueriesContext(connection) as queries:
        response = APIClient().get(f"{API}/users/u1/recommendations", {"k": 5})
    assert response.status_code == 200
    ids = [item["id"] for item in response.json()["items"]]
    assert "i4" not in ids  # seen within the window: excluded
    assert "i3" in ids  # seen only before the window: no longer excluded
    per_user = [
        query["sql"]
        for query in queries.captured_queries
        if Behaviour._meta.db_table in query["sql"] and "user_id" in query["sql"]
    ]
    assert per_user
    for sql in per_user:
        assert "LIMIT" in sql.upper(), sql  # no read of the user's whole history


# --- Forgetting through every door ----------------------------------------------------------


def test_deleting_a_user_in_the_admin_forgets_them(admin_client):
    user = EndUser.objects.create(external_id="gone@example.com")
    Behaviour.objects.create(user=user, kind="search", text="a private search")
    response = admin_client.post(
        f"/admin/recommender/enduser/{user.pk}/delete/", {"post": "yes"}, follow=True
    )
    assert response.status_code == 200
    assert not EndUser.objects.filter(external_id="gone@example.com").exists()
    assert privacy.recently_forgotten(["gone@example.com"]) == {"gone@example.com"}
    assert not LogEntry.objects.filter(object_repr__contains="gone@example.com").exists()


def test_no_shopper_token_for_a_forgotten_user(shop):
    privacy.forget_user(EndUser.objects.get(external_id="bob"))
    response = _key_client("write").post(f"{API}/tokens", {"user": "bob"}, format="json")
    assert response.status_code == 410
    assert not EndUser.objects.filter(external_id="bob").exists()


def test_popularity_kept_during_an_outage_is_not_served_after_it(served):
    user = EndUser.objects.get(external_id="u1")
    fresh = Item.objects.get(external_id="i3")
    with override_settings(CACHES=DEAD_REDIS):
        during = popularity.popularity()
        assert popularity.popularity() is during  # reused within the minute, not recomputed
    Behaviour.objects.create(user=user, item=fresh, kind="purchase")
    cache.clear()
    after = popularity.popularity()
    assert fresh.pk not in during and fresh.pk in after


def test_a_shopper_token_may_batch_only_its_own_events(shop):
    client = _shopper_client("alice")
    own = {"events": [{"user": "alice", "item": "tea", "kind": "view"}] * 2}
    assert client.post(f"{API}/behaviours/batch", own, format="json").status_code == 201
    mixed = {"events": [{"user": "alice", "item": "tea", "kind": "view"},
                        {"user": "bob", "item": "tea", "kind": "purchase"}]}  # fmt: skip
    assert client.post(f"{API}/behaviours/batch", mixed, format="json").status_code == 403
    assert client.post(f"{API}/behaviours/batch", {"events": []}, format="json").status_code == 403
    assert not Behaviour.objects.filter(user__external_id="bob").exists()
