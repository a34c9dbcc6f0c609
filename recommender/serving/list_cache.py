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

Lists computed ahead (``RECOMMENDER_LIST_REFRESH_SECONDS``, off by default), as Gorse
keeps each user's list ready: when a list is computed for a request, how it was asked
(the request without its user, its scenario and variant, and the site token it was built
under) is kept for the user, at most ``MAX_SHAPES`` ways, for that many seconds after their
last list. Each event of theirs that moves their profile then asks a worker
(``recommender.refresh_lists``) to compute those lists again into this cache, under the
key the user's next request will look up; a request that comes first computes it itself,
and the worker then finds it there and skips it. Nothing kept this way is served stale:
the key still holds what the user did, and a way of asking built before a change of the
site (a scenario, an experiment, a model) is not computed again; the next request
rebuilds it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace

from django.db import transaction

from recommender import dbroute, sharedcache, spaces
from recommender.conf import conf
from recommender.models import EndUser, UserProfile

logger = logging.getLogger(__name__)

TOKEN_KEY = "recommender:list-cache:token"
PREFIX = "recommender:list:"
SHAPES = "recommender:list-shapes:"  # + user pk: the ways a user asked for lists lately
MAX_SHAPES = 4
REFRESH_TASK = "recommender.refresh_lists"
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
    did = _did(user, space.pk) if space is not None else None
    described = [
        ("user", user.pk, repr(sorted(user.attributes.items())), repr(did)),
        ("space", space.pk if space is not None else None),
        *_shape(request, scenario, variant),
    ]
    return PREFIX + _digest(described)


# The profile row a list is keyed by, for a caller that reads it with the user
# (``read_with``): ``PROFILE_COLUMNS`` of ``PROFILE_TABLE p`` joined ``ON PROFILE_JOIN``, whose
# one parameter is the space.
PROFILE_TABLE = UserProfile._meta.db_table
PROFILE_COLUMNS = "p.user_id IS NOT NULL, p.events, p.updated_at"
PROFILE_JOIN = "p.user_id = u.id AND p.space_id = %s"


def read_with(user: EndUser, space_id: int, values) -> None:
    """Note on ``user`` their profile row in ``space_id``, read by the caller's own
    statement as ``PROFILE_COLUMNS`` (one round trip fewer for a kept list's answer)."""
    found, events, updated_at = values
    user._list_profile_row = (space_id, _row(events, updated_at) if found else None)


def _row(events: int, updated_at) -> tuple:
    """What of the profile row a key holds: its time as ISO text, the same whether the row
    was read in text or in binary (their datetimes carry different time-zone objects, and
    a key is built from their ``repr``)."""
    return events, updated_at.isoformat() if updated_at is not None else None


def _did(user: EndUser, space_id: int) -> tuple | None:
    """The user's stored profile's (events, updated_at) in the space: as read with the
    user (``read_with``), else one indexed row read without the ORM (whose query building
    cost a cached list's answer more than the query)."""
    known = getattr(user, "_list_profile_row", None)
    if known is not None and known[0] == space_id:
        return known[1]
    with dbroute.read_connection().cursor() as cursor:
        cursor.execute(
            f"SELECT events, updated_at FROM {PROFILE_TABLE} WHERE user_id = %s AND space_id = %s",
            [user.pk, space_id],
        )
        row = cursor.fetchone()
    return _row(*row) if row is not None else None


def _shape(request, scenario: str, variant: str) -> list[tuple]:
    """What of ``request`` a list depends on besides its user."""
    scorer = request.scorer
    return [
        ("scenario", scenario, variant, getattr(scorer, "name", None)),
        ("weights", repr(getattr(getattr(scorer, "weights", None), "tolist", lambda: None)())),
        *(
            (f.name, repr(getattr(request, f.name)))
            for f in fields(request)
            if f.name not in UNKEYED
        ),
    ]


def _digest(described: list) -> str:
    return hashlib.blake2b(repr(described).encode(), digest_size=16).hexdigest()


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


def put(cache_key: str | None, results: list, token: str | None, lang: str) -> None:
    """Keep ``results`` (asked in ``lang``) under ``cache_key`` with the site token read
    before they were computed (a change made meanwhile then makes them miss)."""
    if cache_key is None:
        return
    sharedcache.set(cache_key, (token, kept_form(results, lang)), float(conf.LIST_CACHE_SECONDS))


@dataclass(frozen=True, slots=True)
class ShownItem:
    """What a kept list holds of an item in place of its ``Item`` row: what the response
    shows of it and what the served-list log records. Unpickling kept lists with their rows
    (every text, every translation) took 0.7 ms of a kept list's ~6 ms answer (py-spy on a
    gunicorn worker); these take a tenth of that. Attributes are kept whole: which ones a
    list shows (``RECOMMENDER_PUBLIC_ATTRIBUTES``) is decided when it is served."""

    pk: int
    external_id: str
    category: str
    attributes: dict | None
    title: str  # in the language the list was asked in, which is part of its key

    def text_in(self, lang: str | None) -> tuple[str, str]:
        """As ``Item.text_in``, of what is kept: the title in the list's language."""
        return self.title, ""


def kept_form(results: list, lang: str) -> list:
    """``results`` as a kept list holds them: each item a ``ShownItem``, without the
    ranking features (no answer shows them)."""
    return [
        replace(
            result,
            item=ShownItem(
                result.item.pk,
                result.item.external_id,
                result.item.category,
                result.item.attributes,
                result.item.text_in(lang)[0],
            ),
            features={},
        )
        for result in results
    ]


# --- Lists computed ahead (RECOMMENDER_LIST_REFRESH_SECONDS) ---------------------------------


def refresh_enabled() -> bool:
    return enabled() and int(conf.LIST_REFRESH_SECONDS) > 0


def remember(request, *, scenario: str, variant: str, token: str | None) -> None:
    """Keep how ``request`` asked for the list just computed for its user, so that their
    next event has a worker compute the next one ahead (``refresh``). Continuations
    (``request.exclude``: the next page of a list) are not kept, nor lists asked with free
    text (``request.query``): a typed query is seldom asked again after the shopper's next
    event, and each way kept costs a list computed on every event."""
    user = request.user
    if not refresh_enabled() or user is None or request.exclude or request.query:
        return
    shapes_key = SHAPES + str(user.pk)
    shapes = sharedcache.get(shapes_key) or {}
    shapes[_digest(_shape(request, scenario, variant))] = (
        token,
        replace(request, user=None),
        scenario,
        variant,
        float(conf.LIST_CACHE_SECONDS),
        time.time(),
    )
    newest = sorted(shapes.items(), key=lambda kv: -kv[1][5])[:MAX_SHAPES]
    sharedcache.set(shapes_key, dict(newest), int(conf.LIST_REFRESH_SECONDS))


def forget_user(user_id: int) -> None:
    """Drop how a forgotten user asked for lists (their queries among it)."""
    sharedcache.delete(SHAPES + str(user_id))


# When this process last kept a user's ways of asking alive (``served_again``).
_touched: dict[int, float] = {}


def served_again(user) -> None:
    """A kept list was served to ``user``: they are still active, keep their ways of asking
    for another ``RECOMMENDER_LIST_REFRESH_SECONDS`` (at most once a tenth of that per
    process: a cached answer should cost no more round trips than it must)."""
    if user is None or not refresh_enabled():
        return
    keep = int(conf.LIST_REFRESH_SECONDS)
    now = time.monotonic()
    if now - _touched.get(user.pk, -keep) < keep / 10:
        return
    if len(_touched) > 100_000:
        _touched.clear()
    _touched[user.pk] = now
    sharedcache.touch(SHAPES + str(user.pk), keep)


def after_events(user_ids) -> None:
    """Events of these users moved their profiles: once they are committed, ask a worker to
    compute the lists of those who asked for one lately (a broker that fails costs the
    lists made ahead, never the events)."""
    if not refresh_enabled():
        return
    found = sharedcache.get_many([SHAPES + str(pk) for pk in dict.fromkeys(user_ids)])
    active = [int(key[len(SHAPES) :]) for key in found]
    if active:
        transaction.on_commit(lambda: _queue(active))


# The users whose refresh this process will queue (``_queue``), after REFRESH_DELAY.
REFRESH_DELAY = 0.05  # seconds
_sender_lock = threading.Lock()
_sender_pool: ThreadPoolExecutor | None = None
_sender_pid: int | None = None
_pending: set[int] = set()


def _queue(user_ids: list[int]) -> None:
    """Have this process's sender thread queue the refresh of ``user_ids``: sending a Celery
    task cost an event POST about as much as the rest of it, and the shopper need not wait
    for it (a process that exits first loses only lists made ahead). The thread waits
    REFRESH_DELAY first, so that the worker's work does not compete with the answer to the
    event, and a burst of one user's events is refreshed once. A forked child gets its
    own thread."""
    global _sender_pool, _sender_pid
    with _sender_lock:
        if _sender_pool is None or _sender_pid != os.getpid():
            _sender_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recsite-refresh")
            _sender_pid = os.getpid()
            _pending.clear()
        first = not _pending
        _pending.update(user_ids)
        pool = _sender_pool
    if first:
        pool.submit(_flush)


def _flush() -> None:
    time.sleep(REFRESH_DELAY)
    with _sender_lock:
        user_ids = sorted(_pending)
        _pending.clear()
    _send(user_ids)


# A refresh still queued this long after its event is dropped by the worker: by then the
# shopper's next request has most likely computed the list itself, and a worker that
# fell behind catches up instead of computing lists nobody will read.
REFRESH_EXPIRES = 30  # seconds


def _send(user_ids: list[int]) -> None:
    from celery import current_app

    for user_id in user_ids:
        try:
            current_app.send_task(
                REFRESH_TASK, args=[user_id], retry=False, expires=REFRESH_EXPIRES
            )
        except Exception:  # the broker is down: the next request computes the list itself
            logger.warning("could not queue the list refresh of user %s", user_id, exc_info=True)
            return


def refresh(user_id: int) -> int:
    """Compute the lists ``user_id`` asked for lately (``remember``) into the cache, under
    the keys their next requests will look up; how many were computed. Ways of asking
    built before the site changed are skipped (their scenario, experiment or models may be
    others now), as are lists already there (a request was faster)."""
    from recommender.serving import business, pipeline

    shapes = sharedcache.get(SHAPES + str(user_id)) or {}
    if not shapes:
        return 0
    user = EndUser.objects.filter(pk=user_id).first()
    if user is None:  # forgotten meanwhile
        return 0
    computed = 0
    for token, shape, scenario, variant, seconds, _ in shapes.values():
        wanted = replace(shape, user=user)
        cache_key = key(wanted, scenario=scenario, variant=variant)
        kept, now = lookup(cache_key)
        if kept is not None or now != token:
            continue
        try:
            results = pipeline.recommend(wanted)
        except business.RuleFailure:  # e.g. a user attribute a rule reads changed type
            continue
        sharedcache.set(cache_key, (now, kept_form(results, wanted.lang)), seconds)
        computed += 1
    return computed
