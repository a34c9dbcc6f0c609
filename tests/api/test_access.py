"""API keys, scopes, throttling and the production settings check."""

import secrets
import subprocess
import sys

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.management import call_command
from django.db.models import ProtectedError
from rest_framework.test import APIClient

from recommender import apikeys
from recommender.models import ApiKey, Behaviour, EndUser, Item

pytestmark = pytest.mark.django_db
API = "/api/v1"


@pytest.fixture
def locked(settings):
    settings.RECOMMENDER_REQUIRE_API_KEY = True
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    Item.objects.create(external_id="i1", title="有机绿茶礼盒")
    EndUser.objects.create(external_id="u1")
    cache.clear()
    return settings


def client_with(scope=None):
    client = APIClient()
    if scope:
        _, plain = apikeys.create_key(f"{scope} key", scope)
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    return client


def test_no_key_is_refused_when_keys_are_required(locked):
    response = client_with().get(f"{API}/items")
    assert response.status_code in (401, 403)
    assert client_with().get(f"{API}/health").status_code == 200  # health stays open


def test_read_key_reads_but_cannot_write(locked):
    client = client_with("read")
    assert client.get(f"{API}/items").status_code == 200
    response = client.post(
        f"{API}/behaviours", {"user": "u1", "item": "i1", "kind": "view"}, format="json"
    )
    assert response.status_code == 403
    assert "'events' is needed" in response.json()["detail"]
    response = client.post(f"{API}/items", {"id": "i2", "title": "新品"}, format="json")
    assert response.status_code == 403
    assert "'write' is needed" in response.json()["detail"]


def test_write_key_writes_but_cannot_forget_users(locked):
    client = client_with("write")
    response = client.post(
        f"{API}/behaviours", {"user": "u1", "item": "i1", "kind": "view"}, format="json"
    )
    assert response.status_code == 201
    assert client.delete(f"{API}/users/u1").status_code == 403
    assert client.get(f"{API}/users/u1/export").status_code == 403
    assert EndUser.objects.filter(external_id="u1").exists()


def test_write_key_cannot_delete_items(locked):
    assert client_with("write").delete(f"{API}/items/i1").status_code == 403
    assert Item.objects.get(external_id="i1").is_active


def test_events_key_posts_events_and_reads_nothing(locked):
    client = client_with("events")
    event = {"user": "u1", "item": "i1", "kind": "view"}
    assert client.post(f"{API}/behaviours", event, format="json").status_code == 201
    batch = {"events": [{**event, "kind": "click"}]}
    assert client.post(f"{API}/behaviours/batch", batch, format="json").status_code == 201
    assert client.get(f"{API}/items").status_code == 403
    assert client.get(f"{API}/users/u1/recommendations").status_code == 403
    assert client.get(f"{API}/behaviours", {"user": "u1"}).status_code == 403
    assert client.post(f"{API}/items", {"id": "i2", "title": "x"}, format="json").status_code == 403


def test_deleting_an_item_keeps_behaviour_history(locked):
    user = EndUser.objects.get(external_id="u1")
    item = Item.objects.get(external_id="i1")
    Behaviour.objects.create(user=user, item=item, kind="purchase")
    assert client_with("admin").delete(f"{API}/items/i1").status_code == 204
    item.refresh_from_db()
    assert not item.is_active  # withdrawn from the catalogue …
    assert Behaviour.objects.filter(item=item, kind="purchase").count() == 1  # … history kept
    with pytest.raises(ProtectedError):  # and no code path can erase it by deleting the row
        item.delete()


def test_admin_offers_no_bulk_delete_for_items(admin_client):
    Item.objects.create(external_id="i-admin", title="t")
    page = admin_client.get("/admin/recommender/item/")
    assert page.status_code == 200
    assert "delete_selected" not in page.content.decode()


def _staff(django_user_model, *perms):
    user = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = APIClient()
    client.force_login(user)
    return client


def test_staff_scopes_follow_django_permissions(locked, django_user_model):
    viewer = _staff(django_user_model, "view_item")
    assert viewer.get(f"{API}/items").status_code == 200
    assert viewer.delete(f"{API}/users/u1").status_code == 403
    assert viewer.get(f"{API}/users/u1/export").status_code == 403
    assert (
        viewer.post(
            f"{API}/items/bulk", {"items": [{"id": "i9", "title": "x"}]}, format="json"
        ).status_code
        == 403
    )
    assert EndUser.objects.filter(external_id="u1").exists()


def test_superuser_session_holds_every_scope(locked, admin_user):
    staff = APIClient()
    staff.force_login(admin_user)
    assert staff.get(f"{API}/users/u1/export").status_code == 200


def test_admin_key_and_superuser_session_may_forget(locked, admin_user):
    assert client_with("admin").get(f"{API}/users/u1/export").status_code == 200
    staff = APIClient()
    staff.force_authenticate(admin_user)
    assert staff.delete(f"{API}/users/u1").status_code == 204


def test_revoked_or_forged_keys_are_rejected(locked):
    key, plain = apikeys.create_key("soon revoked", "read")
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=plain)
    assert client.get(f"{API}/items").status_code == 200
    ApiKey.objects.filter(pk=key.pk).update(is_active=False)
    assert client.get(f"{API}/items").status_code == 401
    client.credentials(HTTP_X_API_KEY=f"rk_{key.prefix}_{secrets.token_urlsafe(32)}")
    assert client.get(f"{API}/items").status_code == 401


def test_only_a_hash_of_the_key_is_stored(locked, capsys):
    call_command("apikey", "create", "shop backend", "--scope", "write")
    plain = capsys.readouterr().out.strip()
    key = ApiKey.objects.get(name="shop backend")
    assert plain.startswith(f"rk_{key.prefix}_")
    secret = plain.split("_", 2)[2]
    assert secret not in key.hashed_secret and len(key.hashed_secret) == 64
    assert apikeys.verify(plain) == key


@pytest.fixture
def rates(locked):
    """Set throttle rates for one test (DRF's api_settings reload on the change)."""

    def set_rates(**scopes):
        locked.REST_FRAMEWORK = {**locked.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": scopes}
        cache.clear()

    yield set_rates
    cache.clear()


def test_keys_are_throttled_per_key(rates):
    rates(api="3/min")
    first, second = client_with("read"), client_with("read")
    codes = [first.get(f"{API}/items").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert second.get(f"{API}/items").status_code == 200  # its own budget


def test_throttle_budgets_are_per_endpoint_scope(rates):
    rates(api="100/min", batch="1/min", events="100/min")
    client = client_with("write")
    batch = {"events": [{"user": "u1", "item": "i1", "kind": "view"}]}
    assert client.post(f"{API}/behaviours/batch", batch, format="json").status_code == 201
    refused = client.post(f"{API}/behaviours/batch", batch, format="json")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    # Single events and reads have budgets of their own.
    event = {"user": "u1", "item": "i1", "kind": "click"}
    assert client.post(f"{API}/behaviours", event, format="json").status_code == 201
    assert client.get(f"{API}/items").status_code == 200


def test_keyless_callers_are_throttled_by_their_real_address(rates):
    rates(health="2/min")
    client = APIClient()
    codes = [
        client.get(f"{API}/health", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}").status_code
        for n in range(3)
    ]
    assert codes == [200, 200, 429]  # a forged X-Forwarded-For is not a fresh budget


def test_one_trusted_proxy_identifies_the_client_behind_it(locked):
    locked.REST_FRAMEWORK = {
        **locked.REST_FRAMEWORK,
        "NUM_PROXIES": 1,
        "DEFAULT_THROTTLE_RATES": {"health": "1/min"},
    }
    cache.clear()
    client = APIClient()
    assert client.get(f"{API}/health", HTTP_X_FORWARDED_FOR="203.0.113.1").status_code == 200
    assert client.get(f"{API}/health", HTTP_X_FORWARDED_FOR="203.0.113.2").status_code == 200
    assert client.get(f"{API}/health", HTTP_X_FORWARDED_FOR="203.0.113.1").status_code == 429
    cache.clear()


def test_health_is_open_cheap_and_discloses_nothing(locked, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        response = APIClient().get(f"{API}/health")
    assert response.status_code == 200 and response.json() == {"ok": True}


def test_detailed_health_needs_a_key_or_staff(locked):
    assert APIClient().get(f"{API}/health/detail").status_code in (401, 403)
    body = client_with("read").get(f"{API}/health/detail").json()
    assert body["database"] == "ok" and body["counts"]["items"] == 1


def test_detailed_health_is_reused_for_a_few_seconds(locked, django_assert_max_num_queries):
    locked.RECOMMENDER_HEALTH_CACHE_SECONDS = 30
    client = client_with("read")
    first = client.get(f"{API}/health/detail").json()
    Item.objects.create(external_id="i2", title="新品")
    with django_assert_max_num_queries(2):  # the key lookup (and its last-use bookkeeping)
        second = client.get(f"{API}/health/detail").json()
    assert second == first  # the report was not recomputed
    locked.RECOMMENDER_HEALTH_CACHE_SECONDS = 0


def test_api_docs_need_a_key_or_staff_unless_made_public(locked, admin_user):
    locked.RECOMMENDER_PUBLIC_API_DOCS = False
    assert APIClient().get("/api/schema/").status_code in (401, 403)
    assert APIClient().get("/api/docs/").status_code in (401, 403)
    assert client_with("read").get("/api/schema/").status_code == 200
    staff = APIClient()
    staff.force_login(admin_user)
    assert staff.get("/api/docs/").status_code == 200
    locked.RECOMMENDER_PUBLIC_API_DOCS = True
    assert APIClient().get("/api/schema/").status_code == 200


def test_production_answers_json_not_the_browsable_api(locked):
    response = client_with("read").get(f"{API}/items", HTTP_ACCEPT="text/html")
    assert "text/html" not in response.get("Content-Type", "")
    assert b"<html" not in response.content.lower()


def test_deploy_check_is_clean_with_production_settings():
    env = {
        "PATH": "/usr/bin:/bin",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "shop.example.com",
        "DJANGO_SETTINGS_MODULE": "recsite.settings",
        "RECSITE_AUTOSTART_SERVICES": "0",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_a_key_is_verified_with_one_statement_that_reads_all_of_it(db, django_assert_num_queries):
    key, plain = apikeys.create_key("one read", "write")
    with django_assert_num_queries(1):  # a field left unread would be a second query
        found = apikeys.verify(plain)
        seen = {f.attname: getattr(found, f.attname) for f in ApiKey._meta.concrete_fields}
    assert seen == {f.attname: getattr(key, f.attname) for f in ApiKey._meta.concrete_fields}
    assert found == key and not found._state.adding
    wrong = plain[:-1] + ("A" if plain[-1] != "A" else "B")
    assert apikeys.verify(wrong) is None
    assert apikeys.verify(f"rk_{secrets.token_hex(4)}_{plain.split('_', 2)[2]}") is None
