"""Finished lists kept in the shared cache for ``RECOMMENDER_LIST_CACHE_SECONDS`` (0, the
default: off), so that a user who asks again before anything they did changed gets the
same list without the pipeline running again.

A list is kept under its user, what the user did (their stored profile's ``events`` and
``updated_at`` in the serving space, which every event other than an impression moves,
read in one small query) and their attributes, and every field of the request. A site
token, changed whenever an item, a scenario, an experiment, an attribute declaration or
an encoder space is saved or deleted, when items or events are imported and when a
behaviour model, a ranker or tuned weights are saved, must match too. Everything else
that moves a list (popularity and trending, other shoppers' co-occurrence, the clock)
shows within the time a list is kept. Each answer is still logged as a new served list
(its own ``recommendation_id``), so attribution works on repeats as on fresh lists.

What a cached list gives up: an impression does not change a user's profile, so a
scenario's rotation of shown-but-ignored items (``demote_after``) takes effect when the
list expires, not at once.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import fields

from recommender import sharedcache, spaces
from recommender.conf import conf
from recommender.models import UserProfile

TOKEN_KEY = "recommender:list-cache:token"
PREFIX = "recommender:list:"
# Request fields that are not part of what the list is (the user is keyed by what they
# did; the scorer by the scenario, the experiment's variant and the site token).
UNKEYED = {"user", "scorer"}


def enabled() -> bool:
    return float(conf.LIST_CACHE_SECONDS) > 0


def changed(**_kwargs) -> None:
    """Something every list may depend on changed: no list kept before counts any more
    (a signal receiver too)."""
    sharedcache.set(TOKEN_KEY, uuid.uuid4().hex, None)


def key(request, *, scenario: str, variant: str) -> str | None:
    """The cache key of ``request``'s list, or None when it is not kept (no user, or a
    replay of the past)."""
    user = request.user
    if user is None or request.as_of is not None or request.forget:
        return None
    space = spaces.space_for(request.space_id)
    did = (
        UserProfile.objects.filter(user_id=user.pk, space=space)
        .values_list("events", "updated_at")
        .first()
        if space is not None
        else None
    )
    scorer = request.scorer
    described = [
        ("user", user.pk, repr(sorted(user.attributes.items())), repr(did)),
        ("space", space.pk if space is not None else None),
        ("scenario", scenario, variant, getattr(scorer, "name", None)),
        ("weights", repr(getattr(getattr(scorer, "weights", None), "tolist", lambda: None)())),
    ]
    described += [
        (f.name, repr(getattr(request, f.name))) for f in fields(request) if f.name not in UNKEYED
    ]
    digest = hashlib.blake2b(repr(described).encode(), digest_size=16).hexdigest()
    return PREFIX + digest


def lookup(cache_key: str | None) -> tuple[list | None, str | None]:
    """The list kept under ``cache_key`` while the site token it was kept with holds (else
    None), and the site token now, to keep a fresh list with (one round trip for both)."""
    if cache_key is None:
        return None, None
    found = sharedcache.get_many([TOKEN_KEY, cache_key])
    now = found.get(TOKEN_KEY)
    kept = found.get(cache_key)
    if kept is None:
        return None, now
    token, results = kept
    return (results if token == now else None), now


def put(cache_key: str | None, results: list, token: str | None) -> None:
    """Keep ``results`` under ``cache_key`` with the site token read before they were
    computed (a change made meanwhile then makes them miss)."""
    if cache_key is None:
        return
    sharedcache.set(cache_key, (token, results), float(conf.LIST_CACHE_SECONDS))
