"""Who may call the API: keys and shopper tokens, scope permissions, per-caller throttles."""

from __future__ import annotations

import hashlib
import logging
import time

from django.core.cache import cache
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling
from rest_framework.settings import api_settings

from recommender import apikeys, sharedcache, shopper_tokens
from recommender.conf import conf
from recommender.models import ApiKey

logger = logging.getLogger(__name__)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Api-Key rk_…`` or ``X-Api-Key: rk_…``."""

    keyword = "Api-Key"

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        plain = None
        if header.startswith(self.keyword + " "):
            plain = header[len(self.keyword) + 1 :]
        elif request.headers.get("X-Api-Key"):
            plain = request.headers["X-Api-Key"]
        if plain is None:
            return None
        key = apikeys.verify(plain)
        if key is None:
            raise exceptions.AuthenticationFailed("invalid or revoked API key")
        # Cheap bookkeeping, at most once a minute per key.
        now = timezone.now()
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        return (None, key)

    def authenticate_header(self, request):
        return self.keyword


class ShopperTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Shopper st_…``: a short-lived token for one shopper, the only
    credential a browser may hold (``recommender.shopper_tokens``)."""

    keyword = "Shopper"

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if not header.startswith(self.keyword + " "):
            return None
        token = shopper_tokens.verify(header[len(self.keyword) + 1 :].strip())
        if token is None:
            raise exceptions.AuthenticationFailed("invalid or expired shopper token")
        return (None, token)

    def authenticate_header(self, request):
        return self.keyword


def action_of(request, view) -> str:
    """The viewset action (``list``, ``recommendations``…), or the HTTP method of a plain
    APIView (``get``, ``post``)."""
    return getattr(view, "action", None) or request.method.lower()


def _needed_scope(request, view) -> str:
    needed = getattr(view, "required_scopes", {}).get(action_of(request, view))
    if needed:
        return needed
    return "read" if request.method in permissions.SAFE_METHODS else "write"


# Staff sessions get the scopes their Django permissions imply, so a staff member who may
# only view items in the admin cannot forget users through the API.
_STAFF_PERMISSIONS = {
    "read": "recommender.view_item",
    "events": "recommender.add_behaviour",
    "write": "recommender.change_item",
    "admin": "recommender.delete_enduser",
}


def staff_scopes(user) -> frozenset[str]:
    """The scopes a logged-in staff user holds through their Django permissions."""
    if user is None or not user.is_authenticated or not user.is_staff or not user.is_active:
        return frozenset()
    return frozenset(scope for scope, perm in _STAFF_PERMISSIONS.items() if user.has_perm(perm))


def _shopper_user(request, view, where: str) -> tuple[bool, str | None]:
    """Where a shopper-allowed action names its user: (whether naming one is optional, the
    user named or None)."""
    optional = where.endswith("?")
    where = where.rstrip("?")
    if where == "url":
        return optional, view.kwargs.get(getattr(view, "lookup_url_kwarg", None) or "id")
    if where == "query":
        return optional, request.query_params.get("user")
    data = request.data if isinstance(request.data, dict) else {}
    user = data.get("user")
    return optional, user if isinstance(user, str) else None


def shopper_allows(request, view, token: shopper_tokens.ShopperToken) -> bool:
    """A shopper token may call only the actions a view lists in ``shopper_access``, and
    only about its own shopper (or about no one, where the action allows that)."""
    where = getattr(view, "shopper_access", {}).get(action_of(request, view))
    if where is None:
        return False
    if where == "any":
        return True
    if where == "events":  # a batch: every event must be the shopper's own
        data = request.data if isinstance(request.data, dict) else {}
        batch = data.get("events")
        return (
            isinstance(batch, list)
            and bool(batch)
            and all(isinstance(e, dict) and e.get("user") == token.user for e in batch)
        )
    optional, user = _shopper_user(request, view, where)
    return user == token.user or (optional and user is None)


class ScopedAccess(permissions.BasePermission):
    """Reads need a read key, events an events key, other writes a write key, admin
    actions an admin key; staff sessions hold what their Django permissions grant; a
    shopper token reaches only its own shopper's lists and events.

    With ``RECOMMENDER_REQUIRE_API_KEY`` off (the local demo only), anyone may call it.
    """

    message = "this endpoint needs an API key with the right scope"

    def has_permission(self, request, view):
        needed = _needed_scope(request, view)
        if isinstance(request.auth, shopper_tokens.ShopperToken):
            if shopper_allows(request, view, request.auth):
                return True
            self.message = "a shopper token allows only its own shopper's lists and events"
            return False
        key = request.auth if isinstance(request.auth, ApiKey) else None
        if key is not None:
            if not apikeys.allows(key, needed):
                self.message = f"this API key has scope {key.scope!r}; {needed!r} is needed"
                return False
            return True
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.is_staff:
            if needed in staff_scopes(user):
                return True
            self.message = f"your account's permissions do not grant the {needed!r} scope"
            return False
        return not conf.REQUIRE_API_KEY


class DocsAccess(permissions.BasePermission):
    """The API schema and Swagger UI: open with ``RECOMMENDER_PUBLIC_API_DOCS`` (the default
    while DEBUG is on), else for any valid API key or a staff login."""

    message = "the API docs need an API key or a staff login (RECOMMENDER_PUBLIC_API_DOCS)"

    def has_permission(self, request, view):
        if conf.PUBLIC_API_DOCS:
            return True
        user = getattr(request, "user", None)
        return isinstance(request.auth, ApiKey) or bool(
            user is not None and user.is_authenticated and user.is_staff
        )


# One round trip per request: count in a window that starts with the key's first request
# and expires with it (DRF's own throttle reads and rewrites a list of timestamps: two).
# A list endpoint's read ahead (``sharedcache.ahead_keys``), KEYS[2:], is read with it: one
# round trip fewer per list.
_COUNT_IN_WINDOW = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if #KEYS == 1 then return {n, redis.call('PTTL', KEYS[1])} end
return {n, redis.call('PTTL', KEYS[1]), redis.call('MGET', unpack(KEYS, 2, #KEYS))}
"""


_last_fail_open_warning = 0.0


def _warn_fail_open(exc: Exception) -> None:
    """One warning a minute per process while the throttle's cache is down, not one per
    request (an outage would otherwise flood the log)."""
    global _last_fail_open_warning
    now = time.monotonic()
    if now - _last_fail_open_warning >= 60:
        _last_fail_open_warning = now
        logger.warning("throttle cache unavailable (%s); requests pass unthrottled", exc)


class ApiKeyRateThrottle(throttling.SimpleRateThrottle):
    """Per caller and per endpoint scope, in the shared cache (Redis): at most
    ``num_requests`` per window of ``duration`` seconds from the window's first request.

    The caller is the API key, the shopper of a shopper token, the staff user, or else the
    client address (``NUM_PROXIES`` says how many proxies' ``X-Forwarded-For`` entries to
    trust). The scope is the view's ``throttle_scopes[action]`` or ``throttle_scope``
    (rates in ``DEFAULT_THROTTLE_RATES``). If the cache fails, requests pass
    (``RECOMMENDER_THROTTLE_FAIL_OPEN``, the default) or answer 503.
    """

    scope = "api"
    remaining_ms = 0

    def __init__(self):
        # The rate depends on the view's scope, known only per request (allow_request).
        pass

    def allow_request(self, request, view):
        self.scope = getattr(view, "throttle_scopes", {}).get(action_of(request, view)) or getattr(
            view, "throttle_scope", "api"
        )
        rates = api_settings.DEFAULT_THROTTLE_RATES  # reloaded when settings change
        self.rate = rates.get(self.scope) or rates.get("api")
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        try:
            key = cache.make_and_validate_key(self.key)
            client = sharedcache.redis_client(key)
            if client is None:  # another cache backend: DRF's own (two round trips)
                return super().allow_request(request, view)
            ahead = sharedcache.ahead_keys() or []
            made = [cache.make_and_validate_key(name) for name in ahead]
            reply = client.eval(
                _COUNT_IN_WINDOW, 1 + len(made), key, *made, int(self.duration * 1000)
            )
            count, self.remaining_ms = reply[0], reply[1]
            if ahead:
                sharedcache.took_ahead(ahead, reply[2])
        except Exception as exc:
            if conf.THROTTLE_FAIL_OPEN:
                _warn_fail_open(exc)
                return True
            raise
        return count <= self.num_requests

    def wait(self):
        if self.remaining_ms:
            return max(self.remaining_ms, 0) / 1000.0
        return super().wait() if getattr(self, "history", None) is not None else None

    def get_cache_key(self, request, view):
        auth = request.auth
        if isinstance(auth, ApiKey):
            ident = f"key-{auth.pk}"
        elif isinstance(auth, shopper_tokens.ShopperToken):
            ident = "shopper-" + hashlib.sha256(auth.user.encode()).hexdigest()[:24]
        elif getattr(request, "user", None) is not None and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Documents the key header in the OpenAPI schema (and Swagger UI's Authorize box)."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Api-Key rk_…  (create one with `manage.py apikey create NAME`)",
        }


class ShopperTokenScheme(OpenApiAuthenticationExtension):
    """Documents the shopper token header (browser calls) in the OpenAPI schema."""

    target_class = ShopperTokenAuthentication
    name = "ShopperToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Shopper st_…  (issued by your backend: POST /api/v1/tokens)",
        }
