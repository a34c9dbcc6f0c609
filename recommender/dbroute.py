"""Serving reads on a streaming-replication standby, every write on the primary.

With a ``replica`` entry in ``DATABASES`` (recsite/settings.py adds one for
``DATABASE_REPLICA_URL``) the API's safe requests (GET, HEAD) read from the standby:

* ORM reads through :class:`ReplicaRouter`, raw SQL through :func:`read_connection`;
  writes always go to the primary, and so does every read inside a transaction on the
  primary (a read that decides a write must see the primary's rows).
* Read-your-writes: a request that may write (POST, PUT, PATCH, DELETE) marks the users it
  names "wrote at T" in the shared cache; their reads stay on the primary for
  ``REPLICA_MAX_LAG_SECONDS + REPLICA_CHECK_SECONDS``, longer than a usable standby lags.
* A standby that is down or further behind than ``REPLICA_MAX_LAG_SECONDS`` is skipped.
  Each process checks it at most every ``REPLICA_CHECK_SECONDS``, so a dead standby costs
  one failed connect per process and interval, not one per request; a request that failed
  on the standby meanwhile is answered again from the primary (:class:`ReplicaReadsMiddleware`).

Outside a request's read scope (Celery tasks, management commands, the admin) everything
uses the primary, and without a ``replica`` entry nothing here changes anything.
This module imports only Django and ``recommender.conf`` (the bottom layers' rule).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db import Error as DatabaseError

from recommender.conf import conf

logger = logging.getLogger(__name__)

REPLICA = "replica"  # the DATABASES alias of the standby
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WROTE_PREFIX = "recsite:wrote:"

# What the standby reports: is it a standby, and how far behind is it. With nothing left to
# replay (receive == replay) it is current, however old its last replayed transaction.
_LAG_SQL = (
    "SELECT pg_is_in_recovery(), CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() "
    "THEN 0 ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END"
)


@dataclass
class ReadScope:
    """The request being served: whose data it reads, and where its reads went."""

    users: set[str] = field(default_factory=set)
    primary_only: bool = False
    alias: str | None = None  # decided at the first read, kept for the whole request
    used_replica: bool = False


_scope: ContextVar[ReadScope | None] = ContextVar("recommender_read_scope", default=None)


@dataclass
class _Health:
    checked_at: float = float("-inf")
    usable: bool = False
    lag: float | None = None


_health = _Health()
_health_lock = threading.Lock()


def replica_configured() -> bool:
    """Whether the project has a standby (a ``replica`` entry in ``DATABASES``)."""
    return REPLICA in connections.settings


@contextmanager
def serving(users: Iterable[str] = (), *, primary_only: bool = False) -> Iterator[ReadScope]:
    """Within the block, reads may go to the standby unless one of ``users`` wrote lately
    (or ``primary_only``). Nests: the inner block wins until it ends."""
    scope = ReadScope(users={str(user) for user in users}, primary_only=primary_only)
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


def current_scope() -> ReadScope | None:
    """The read scope of the request being served in this context, if any."""
    return _scope.get()


def window_seconds() -> float:
    """How long a user's reads stay on the primary after they write."""
    return float(conf.REPLICA_MAX_LAG_SECONDS) + float(conf.REPLICA_CHECK_SECONDS)


def _key(user: str) -> str:
    # Hashed: cache keys (and a Redis MONITOR) hold no user ids.
    return _WROTE_PREFIX + hashlib.blake2b(user.encode(), digest_size=12).hexdigest()


def mark_written(users: Iterable[str]) -> None:
    """Note that ``users`` just wrote: their next reads go to the primary for a while."""
    keys = {_key(str(user)) for user in users}
    if not keys or not replica_configured():
        return
    try:
        cache.set_many(dict.fromkeys(keys, time.time()), timeout=max(1, round(window_seconds())))
    except Exception as exc:  # noqa: BLE001 - the write succeeded; its readers fall back below
        logger.warning("could not mark a write in the cache (%s)", exc.__class__.__name__)


def wrote_recently(users: Iterable[str]) -> bool:
    """Whether any of ``users`` wrote within the read-your-writes window (True when the
    cache cannot say: their reads then go to the primary)."""
    keys = [_key(str(user)) for user in users]
    if not keys:
        return False
    cutoff = time.time() - window_seconds()
    try:
        marks = cache.get_many(keys)
    except Exception as exc:  # noqa: BLE001 - Redis down: the safe answer
        logger.warning("could not read write marks from the cache (%s)", exc.__class__.__name__)
        return True
    return any(at >= cutoff for at in marks.values())


def replica_health(*, force: bool = False) -> _Health:
    """The standby's last health check (redone when older than ``REPLICA_CHECK_SECONDS``,
    or with ``force``): usable when it answers, is in recovery and lags little enough."""
    now = time.monotonic()
    with _health_lock:
        if not force and now - _health.checked_at < float(conf.REPLICA_CHECK_SECONDS):
            return _Health(_health.checked_at, _health.usable, _health.lag)
    usable, lag = False, None
    replica = connections[REPLICA]
    try:
        replica.close_if_unusable_or_obsolete()
        with replica.cursor() as cursor:
            cursor.execute(_LAG_SQL)
            in_recovery, lag = cursor.fetchone()
        lag = float(lag)
        usable = bool(in_recovery) and lag <= float(conf.REPLICA_MAX_LAG_SECONDS)
    except DatabaseError as exc:
        replica.close()
        logger.warning("standby unavailable (%s); reads go to the primary", exc.__class__.__name__)
    with _health_lock:
        if usable != _health.usable:
            logger.warning("standby %s (lag %s s)", "usable" if usable else "skipped", lag)
        _health.checked_at, _health.usable, _health.lag = time.monotonic(), usable, lag
        return _Health(_health.checked_at, usable, lag)


def read_alias() -> str:
    """The database alias reads should use now (see the module's docstring)."""
    scope = _scope.get()
    if scope is None or scope.primary_only or not replica_configured():
        return DEFAULT_DB_ALIAS
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return DEFAULT_DB_ALIAS  # a read inside a write's transaction sees that transaction
    if scope.alias is None:
        # Once per request: one request's reads all come from one place.
        on_replica = not wrote_recently(scope.users) and replica_health().usable
        scope.alias = REPLICA if on_replica else DEFAULT_DB_ALIAS
    if scope.alias == REPLICA:
        scope.used_replica = True
    return scope.alias


def read_connection():
    """The connection a serving read's raw SQL should use: the standby within a request's
    read scope when it is usable, else Django's default connection."""
    return connections[read_alias()]


class ReplicaRouter:
    """Django database router: reads per :func:`read_alias`, writes and migrations on the
    primary."""

    def db_for_read(self, model, **hints):
        return read_alias()

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True  # one database, two copies of it

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS


def _body_users(request) -> set[str]:
    """Users named in a JSON body: ``user``, or each event's ``user`` in ``events``."""
    if "json" not in request.META.get("CONTENT_TYPE", ""):
        return set()
    try:
        data = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return set()
    except Exception:  # noqa: BLE001 - e.g. RequestDataTooBig: the view answers that
        return set()
    found = set()
    if isinstance(data, dict):
        if isinstance(data.get("user"), str | int):
            found.add(str(data["user"]))
        events = data.get("events")
        if isinstance(events, list):
            found.update(str(e["user"]) for e in events if isinstance(e, dict) and "user" in e)
    return found


def request_users(request, view_kwargs) -> set[str]:
    """The end users a request names: a ``users/<id>/…`` route, a ``user`` query
    parameter, and (for writes) the ``user`` fields of its JSON body."""
    found = set()
    match = getattr(request, "resolver_match", None)
    if match is not None and (match.url_name or "").startswith("user-") and "id" in view_kwargs:
        found.add(str(view_kwargs["id"]))
    if request.GET.get("user"):
        found.add(request.GET["user"])
    if request.method not in SAFE_METHODS:
        found |= _body_users(request)
    return found


class ReplicaReadsMiddleware:
    """Opens the read scope of each safe API request and marks the users of each write.

    A safe request that failed (5xx) after reading from the standby is answered again from
    the primary when a fresh check finds the standby gone or lagging: a standby stopped
    mid-run costs no failed request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not replica_configured():
            return self.get_response(request)
        if request.method not in SAFE_METHODS:
            request._recsite_writers = set()
            response = self.get_response(request)
            mark_written(request._recsite_writers)
            return response
        with serving() as scope:
            request._recsite_read_scope = scope
            response = self.get_response(request)
        if response.status_code >= 500 and scope.used_replica:
            if not replica_health(force=True).usable:
                logger.warning("a read failed on the standby; answering it from the primary")
                with serving(scope.users, primary_only=True):
                    response = self.get_response(request)
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        users = request_users(request, view_kwargs)
        if request.method not in SAFE_METHODS:
            request._recsite_writers = users
            return None
        scope = getattr(request, "_recsite_read_scope", None)
        if scope is not None:
            scope.users |= users
            if not request.path_info.startswith("/api/"):
                scope.primary_only = True  # the admin and dashboard read what they wrote
        return None
