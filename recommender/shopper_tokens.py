"""Shopper tokens: the browser-safe way to call the API.

API keys are secrets of a site's backend and never go to browsers. A page that calls the
API from the browser gets a short-lived token for one shopper instead, issued by the
site's backend (``POST /api/v1/tokens`` with a write key, or :func:`issue` in a Django
project). The token allows only that shopper's recommendations, search and events (see
``recommender.api.access``). It is signed with ``SECRET_KEY`` by Django's signing module,
so checking one costs no database query, and it expires after
``RECOMMENDER_SHOPPER_TOKEN_TTL`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core import signing

from recommender.conf import conf

_SALT = "recommender.shopper-token"
PREFIX = "st_"


@dataclass(frozen=True)
class ShopperToken:
    """A verified token: the external id of the one shopper it speaks for."""

    user: str


def ttl_seconds() -> int:
    return int(conf.SHOPPER_TOKEN_TTL)


def issue(user: str) -> str:
    """A token for the shopper ``user`` (a site's own user id), valid for ``ttl_seconds()``."""
    return PREFIX + signing.dumps({"u": user}, salt=_SALT, compress=True)


def verify(token: str) -> ShopperToken | None:
    """The shopper a token speaks for, or None when it is forged, altered or expired."""
    if not token.startswith(PREFIX):
        return None
    try:
        payload = signing.loads(token[len(PREFIX) :], salt=_SALT, max_age=ttl_seconds())
    except signing.BadSignature:  # SignatureExpired is a BadSignature too
        return None
    user = payload.get("u") if isinstance(payload, dict) else None
    return ShopperToken(user) if isinstance(user, str) and user else None
