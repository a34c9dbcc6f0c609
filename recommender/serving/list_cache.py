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
shows within the time a list is kept, except where the clock decides what may be listed:
a list is kept no longer than until the first of its items leaves its availability
window, or a filter of the request comparing with ``now()`` may change its verdict on one
of them (``sale_ends > now()``: until the first listed item's ``sale_ends``). Each answer is still
logged as a new served list (its own ``recommendation_id``), so attribution works on
repeats as on fresh lists.

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
from django.utils import timezone

from recommender import dbroute, sharedcache, spaces
from recommender.conf import conf
from recommender.models import EndUser, UserProfile
from recommender.serving import served_lists, shown

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


# A kept list is a Redis hash (``put``): "t", the site token it was computed under, as the
# cache stores that token; "r", its results (``kept_form``) as the cache pickles a value;
# "o", its items as the answer shows them (JSON, ``shown``), with "a", which attributes
# lists showed then; "i", its items as the served-list log records them (JSON), and "m",
# their ids, comma-separated. A repeat then costs one round trip for the check, the log
# and the answer together (``_SERVE``), and no item built or encoded again.
#
# KEYS: the list, the site token, the served-list queue, the new list's chain. ARGV: the
# log entry before and after its items ("": logging off), the chain's seconds, then the
# items the pages before it served. Answers {token now} for a miss or a list kept under
# another token, else {token, "o", "a", "r"}, the list logged.
_SERVE = """
local kept = redis.call('HMGET', KEYS[1], 't', 'o', 'a', 'i', 'm', 'r')
local now = redis.call('GET', KEYS[2]) or ''
if (not kept[1]) or kept[1] ~= now then return {now} end
if ARGV[1] ~= '' then
  redis.call('RPUSH', KEYS[3], ARGV[1] .. kept[4] .. ARGV[2])
  local members = {}
  for pk in string.gmatch(kept[5], '[^,]+') do members[#members + 1] = pk end
  for i = 4, #ARGV do members[#members + 1] = ARGV[i] end
  for first = 1, #members, 1000 do
    redis.call('SADD', KEYS[4], unpack(members, first, math.min(first + 999, #members)))
  end
  if #members > 0 then redis.call('EXPIRE', KEYS[4], ARGV[3]) end
end
return {now, kept[2], kept[3], kept[6]}
"""


@dataclass(frozen=True)
class Served:
    """What ``serve`` found: the site token now (to keep a fresh list with), and for a kept
    list its results, its items as the answer shows them (``items_json``, None when the
    attributes lists show have changed since), and the id it was logged under."""

    token: str | None
    kept: bool = False
    items_json: bytes | None = None
    recommendation_id: str | None = None
    stored_results: object = None  # as stored: call ``results()``

    def results(self) -> list | None:
        if not self.kept:
            return None
        if isinstance(self.stored_results, bytes):
            return sharedcache.decode(self.stored_results)
        return self.stored_results


def serve(cache_key: str | None, log: served_lists.Pending | None = None) -> Served:
    """The list kept under ``cache_key`` if the site token it was kept with still holds,
    logged as ``log`` (a served list of its own; None: not logged), and the site token
    now. One round trip for all of it on Redis; a cache that fails is a miss."""
    if cache_key is None:
        return Served(None)
    client = sharedcache.redis_client(TOKEN_KEY)
    if client is None:
        return _serve_from_cache(cache_key, log)
    chain = served_lists.CHAIN.format(log.recommendation_id if log else "")
    if log is None:
        argv = ["", "", 0]
    else:
        argv = [log.head, log.tail, served_lists.CHAIN_SECONDS, *sorted(log.earlier)]
    try:
        reply = client.eval(
            _SERVE,
            4,
            sharedcache.stored_key(cache_key),
            sharedcache.stored_key(TOKEN_KEY),
            served_lists.QUEUE,
            chain,
            *argv,
        )
    except Exception:  # noqa: BLE001 - an outage: the list is computed (and logged) anew
        sharedcache.failed("list cache")
        return Served(None)
    token = sharedcache.decode(reply[0]) if reply[0] else None
    if len(reply) == 1:
        return Served(token)
    items, public, results = reply[1], reply[2], reply[3]
    fresh = bool(items) and public.decode() == shown.public_attributes_shape()
    return Served(
        token,
        kept=True,
        items_json=items if fresh else None,
        recommendation_id=log.recommendation_id if log else None,
        stored_results=results,
    )


def _serve_from_cache(cache_key: str, log: served_lists.Pending | None) -> Served:
    """``serve`` with a cache that is not Redis (no scripts): the same, in two steps."""
    found = sharedcache.get_many([TOKEN_KEY, cache_key])
    token = found.get(TOKEN_KEY)
    kept = found.get(cache_key)
    if kept is None or kept["t"] != token:
        return Served(token)
    recommendation_id = None
    if log is not None:
        recommendation_id = served_lists.record_pending(log, kept["i"], kept["m"])
    fresh = bool(kept["o"]) and kept["a"] == shown.public_attributes_shape()
    return Served(
        token,
        kept=True,
        items_json=kept["o"] if fresh else None,
        recommendation_id=recommendation_id,
        stored_results=kept["r"],
    )


def lookup(cache_key: str | None) -> tuple[list | None, str | None]:
    """The list kept under ``cache_key`` while the site token it was kept with holds (else
    None), and the site token now; not logged."""
    found = serve(cache_key)
    return found.results(), found.token


def put(
    cache_key: str | None,
    results: list,
    token: str | None,
    lang: str,
    seconds: float | None = None,
    *,
    request=None,
    since=None,
) -> None:
    """Keep ``results`` (asked in ``lang``) under ``cache_key`` with the site token read
    before they were computed (a change made meanwhile then makes them miss), for
    ``seconds`` (default ``RECOMMENDER_LIST_CACHE_SECONDS``), and no longer than their
    items' windows and ``request``'s filters allow (``_rules_left``; ``since``: when the
    list's computation began)."""
    if cache_key is None:
        return
    seconds = float(conf.LIST_CACHE_SECONDS) if seconds is None else float(seconds)
    seconds = min(seconds, _window_left(results))
    if seconds > 0 and request is not None:
        seconds = min(seconds, _rules_left(request, results, since))
    if seconds <= 0:
        return
    kept = kept_form(results, lang)
    try:
        items = shown.to_json([shown.item_data(result, lang) for result in kept])
        public = shown.public_attributes_shape()
    except (TypeError, ValueError):  # not JSON: a repeat builds its answer from the results
        items, public = b"", ""
    logged = served_lists.items_json(kept)
    ids = [result.item.pk for result in kept]
    client = sharedcache.redis_client(TOKEN_KEY)
    if client is None:
        value = {"t": token, "r": kept, "o": items, "a": public, "i": logged, "m": ids}
        sharedcache.set(cache_key, value, seconds)
        return
    stored = {
        "t": sharedcache.encode(token) if token is not None else b"",
        "r": sharedcache.encode(kept),
        "o": items,
        "a": public,
        "i": logged,
        "m": ",".join(map(str, ids)),
    }
    name = sharedcache.stored_key(cache_key)
    try:
        with client.pipeline(transaction=True) as pipe:  # never a hash without its expiry
            pipe.delete(name)
            pipe.hset(name, mapping=stored)
            pipe.pexpire(name, max(1, int(seconds * 1000)))
            pipe.execute()
    except Exception:  # noqa: BLE001 - an outage costs the kept list, not the answer
        sharedcache.failed("list cache")


def _window_left(results: list) -> float:
    """Seconds until the first of the listed items leaves its availability window
    (``available_until``; inf when none has one): a kept list must expire by then, since the
    clock passing a window changes no site token, and an item is never recommended outside
    its window."""
    ends = [
        result.item.available_until
        for result in results
        if getattr(result.item, "available_until", None) is not None
    ]
    if not ends:
        return float("inf")
    return (min(ends) - timezone.now()).total_seconds()


def _rules_left(request, results: list, since) -> float:
    """Seconds until a filter of ``request`` (its own, its scenario's, its promotions')
    that compares with ``now()`` may change its verdict on a listed item
    (``business.next_change``; inf when none can): like a window, the clock passing
    ``sale_ends`` changes no site token, and a list must not outlive the rules that chose
    it. 0 (not kept) when such a moment passed while the list was computed, or cannot be
    told."""
    from recommender.serving import business

    texts = [*request.rules, *(promotion.filter for promotion in request.promotions)]
    if not texts:
        return float("inf")
    since = since or timezone.now()
    try:
        moment = business.next_change(
            texts,
            [result.item.pk for result in results],
            after=since,
            user=request.user,
            context=request.context,
            params=request.params,
        )
    except business.RuleFailure:
        return 0.0
    if moment is None:
        return float("inf")
    return (moment - timezone.now()).total_seconds()


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
        found = serve(cache_key)
        if found.kept or found.token != token:
            continue
        started = timezone.now()
        try:
            results = pipeline.recommend(wanted)
        except business.RuleFailure:  # e.g. a user attribute a rule reads changed type
            continue
        put(cache_key, results, found.token, wanted.lang, seconds, request=wanted, since=started)
        computed += 1
    return computed
