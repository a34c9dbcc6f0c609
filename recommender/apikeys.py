"""API keys: ``rk_<prefix>_<secret>``; the prefix finds the row, a SHA-256 of the secret
checks it. The secret is 32 random bytes, so a fast hash is as safe as a slow one here."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from recommender.models import ApiKey, ApiScope

# What each key scope may do. ``events`` is for ingestion-only clients (a tracking
# pixel's backend, a log shipper): they post behaviours and read nothing.
GRANTS: dict[str, frozenset[str]] = {
    ApiScope.READ: frozenset({"read"}),
    ApiScope.EVENTS: frozenset({"events"}),
    ApiScope.WRITE: frozenset({"read", "events", "write"}),
    ApiScope.ADMIN: frozenset({"read", "events", "write", "admin"}),
}
SCOPES = tuple(str(scope) for scope in GRANTS)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(name: str, scope: str) -> tuple[ApiKey, str]:
    """Create a key; the returned plain text is shown once and never stored."""
    if scope not in GRANTS:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    key = ApiKey.objects.create(name=name, prefix=prefix, hashed_secret=_hash(secret), scope=scope)
    return key, f"rk_{prefix}_{secret}"


def verify(plain: str) -> ApiKey | None:
    """The active key matching ``plain``, or None."""
    parts = plain.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != "rk":
        return None
    key = ApiKey.objects.filter(prefix=parts[1], is_active=True).first()
    if key is None or not hmac.compare_digest(key.hashed_secret, _hash(parts[2])):
        return None
    return key


def allows(key: ApiKey, needed: str) -> bool:
    """Whether ``key`` may do what needs scope ``needed``."""
    return needed in GRANTS.get(key.scope, frozenset())
