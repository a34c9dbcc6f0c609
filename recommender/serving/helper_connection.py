"""A second database connection for the serving path's longest wait.

A recommendations request spends about a third of its time in its nearest-neighbour
search, with the Python process idle while the database walks the HNSW graph. The search
needs only the profile vector (it leaves out the user's items in its own SQL), so it runs
on a helper thread with its own connection (Django gives every thread its own) while the
request thread gathers the other candidate sources on the request's connection. One
helper per process; while it is busy (a threaded server's other request) work runs inline
rather than queue for it.

Only outside transactions: another connection cannot see a transaction's uncommitted rows
(tests wrapped in a transaction, offline evaluation's rolled-back cuts). There, and when
``RECOMMENDER_PARALLEL_RETRIEVAL`` is off, the work runs inline, in the caller's thread.
A database error on the helper's connection closes it (the next job opens a fresh one)
and the work is done again inline, so a dropped connection costs one slower request.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from django.db import Error as DatabaseError
from django.db import connection

from recommender.conf import conf

logger = logging.getLogger(__name__)

T = TypeVar("T")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_owner_pid: int | None = None  # a forked child (gunicorn, celery) needs its own thread
_busy = False  # a job is on the helper thread


def enabled() -> bool:
    """Whether ``start`` may use the helper thread for work started now."""
    return bool(conf.PARALLEL_RETRIEVAL) and (not connection.in_atomic_block)


class Pending(Generic[T]):
    """Work started by ``start``; ``result()`` waits for it."""

    def __init__(self, function: Callable[..., T], args: tuple, future: Future | None):
        self._function, self._args, self._future = function, args, future
        self.ran_inline = future is None

    def result(self) -> T:
        if self._future is None:
            return self._function(*self._args)
        try:
            return self._future.result()
        except DatabaseError as exc:
            logger.warning("helper connection failed (%s); running the query inline", exc)
            self.ran_inline = True
            return self._function(*self._args)


def start(function: Callable[..., T], *args) -> Pending[T]:
    """Run ``function(*args)`` on the helper thread's connection, or later inline (see the
    module's docstring); either way ``.result()`` gives its value. A threaded server's
    requests do not queue for the helper: when it is busy, the work runs inline."""
    global _busy
    if not enabled():
        return Pending(function, args, None)
    pool = _pool()
    with _lock:
        if _busy:
            return Pending(function, args, None)
        _busy = True
    try:
        # In this request's context: its read scope (recommender.dbroute) routes the
        # helper's reads to the same database as the request's own.
        future = pool.submit(contextvars.copy_context().run, _run, function, args)
    except BaseException:
        _set_idle()
        raise
    return Pending(function, args, future)


def _set_idle() -> None:
    global _busy
    with _lock:
        _busy = False


def _pool() -> ThreadPoolExecutor:
    global _executor, _owner_pid, _busy
    with _lock:
        if _executor is None or _owner_pid != os.getpid():
            _busy = False  # a forked child inherits the flag, not the thread
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recsite-db")
            _owner_pid = os.getpid()
        return _executor


def _run(function: Callable[..., T], args: tuple) -> T:
    # What Django does around each request, for this thread's long-lived connection:
    # replace it once it is past CONN_MAX_AGE or has failed.
    try:
        connection.close_if_unusable_or_obsolete()
        # No ``SELECT 1`` probe before each job (CONN_HEALTH_CHECKS would send one, a round
        # trip a request): a dead connection fails the job itself, which closes it below,
        # and the request runs the work again inline.
        connection.health_check_done = True
        return function(*args)
    except DatabaseError:
        connection.close()
        raise
    finally:
        _set_idle()  # before the result is set, so its reader finds the helper free


def shutdown() -> None:
    """Close the helper thread's connection and stop the thread (test teardown, exit): an
    open connection would keep its database from being dropped."""
    global _executor
    with _lock:
        executor, _executor = _executor, None
    if executor is not None and _owner_pid == os.getpid():
        executor.submit(_close).result()  # that thread's own connection
        executor.shutdown(wait=True)


def _close() -> None:
    connection.close()
