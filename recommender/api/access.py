"""Who may call the API: key authentication, scope permissions and per-key throttles."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

from recommender import apikeys
from recommender.models import ApiKey


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


def _needed_scope(request, view) -> str:
    needed = getattr(view, "required_scopes", {}).get(getattr(view, "action", None) or "")
    if needed:
        return needed
    return "read" if request.method in permissions.SAFE_METHODS else "write"


class ScopedAccess(permissions.BasePermission):
    """Reads need a read key, writes a write key, admin actions an admin key or staff.

    With ``RECOMMENDER_REQUIRE_API_KEY`` off (the local demo), anyone may call it.
    """

    message = "this endpoint needs an API key with the right scope"

    def has_permission(self, request, view):
        needed = _needed_scope(request, view)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.is_staff:
            return True
        key = request.auth if isinstance(request.auth, ApiKey) else None
        if key is not None:
            if not apikeys.allows(key, needed):
                self.message = f"this API key has scope {key.scope!r}; {needed!r} is needed"
                return False
            return True
        return not settings.RECOMMENDER_REQUIRE_API_KEY


# One round trip per request: count in a window that starts with the key's first request
# and expires with it (DRF's own throttle reads and rewrites a list of timestamps: two).
_COUNT_IN_WINDOW = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}
"""


class ApiKeyRateThrottle(throttling.SimpleRateThrottle):
    """Per key (or per client address without one), in the shared cache (Redis): at most
    ``num_requests`` per window of ``duration`` seconds from the window's first request."""

    scope = "api"
    remaining_ms = 0

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        key = cache.make_and_validate_key(self.key)
        client = cache._cache.get_client(key, write=True)
        count, self.remaining_ms = client.eval(_COUNT_IN_WINDOW, 1, key, int(self.duration * 1000))
        return count <= self.num_requests

    def wait(self):
        return max(self.remaining_ms, 0) / 1000.0

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiKey):
            ident = f"key-{request.auth.pk}"
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
