"""API keys, scopes, throttling and the production settings check."""

import secrets
import subprocess
import sys

import pytest
from django.core.cache import cache
from django.core.management import call_command
from rest_framework.test import APIClient

from recommender import apikeys
from recommender.models import ApiKey, EndUser, Item

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


def test_admin_key_and_staff_session_may_forget(locked, admin_user):
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


def test_keys_are_throttled_per_key(locked):
    locked.REST_FRAMEWORK = {**locked.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api": "3/min"}}
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    try:
        first, second = client_with("read"), client_with("read")
        codes = [first.get(f"{API}/items").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        assert second.get(f"{API}/items").status_code == 200  # its own budget
    finally:
        cache.clear()
        locked.REST_FRAMEWORK = {
            **locked.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"api": "6000/min"},
        }
        SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES


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
