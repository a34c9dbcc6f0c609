"""Reading and writing pgvector columns in PostgreSQL's binary format, straight from and
into numpy.

Through the ORM a vector arrives as text (``'[0.1,0.2,…]'``) and is parsed float by float
in Python: ~0.5 ms per 384-d vector, which dominated serving. In binary a vector is
``uint16 dim, uint16 unused`` then ``dim`` big-endian float32s, one ``frombuffer`` away.
The query runs on Django's own connection (same transaction, same settings; on a
streaming-replication standby where ``recommender.dbroute`` routes the request's reads),
through a server-side-binding psycopg cursor, because Django's client-side cursors
return text only.
"""

from __future__ import annotations

import functools
import struct
import time
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import psycopg
from django.db import DatabaseError
from django.db import connection as primary
from psycopg.adapt import Dumper
from psycopg.pq import Format

from recommender import dbroute


def decode(value: bytes | None) -> np.ndarray | None:
    """One binary pgvector value as a float32 array (None stays None)."""
    if value is None:
        return None
    return np.frombuffer(value, dtype=">f4", offset=4).astype(np.float32)


def fetch(
    sql: str, params: Sequence | dict = (), *, using=None, prepare: bool | None = None
) -> list[tuple]:
    """Rows of ``sql`` with every column in binary: vectors come back as bytes for
    ``decode``, other types as their Python values. ``Vector`` parameters go in binary.
    ``using``: a Django connection (default: ``dbroute.read_connection()``, the primary
    outside a request that may read from a standby). ``prepare``: None prepares the
    statement as the connection's ``prepare_threshold`` says (never, unless
    ``DATABASE_PREPARED_STATEMENTS`` is on); False never."""
    connection = using if using is not None else dbroute.read_connection()
    if not _checks_the_connection(connection):
        return _fetch(sql, params, connection, prepare)
    # The connection's first statement of the request, outside a transaction: it stands in
    # for Django's health check (CONN_HEALTH_CHECKS: a ``SELECT 1`` round trip before it,
    # a tenth of a kept list's answer). If the connection turns out to be lost (the server
    # restarted, a standby was replaced), it is replaced and the read run again on the new
    # one, as the check would have done; a statement that fails on a sound connection
    # fails as it did.
    connection.health_check_done = True
    try:
        return _fetch(sql, params, connection, prepare)
    except DatabaseError:
        if connection.connection is not None and not connection.connection.broken:
            raise
        connection.close()
        return _fetch(sql, params, connection, prepare)


def _fetch(sql: str, params, connection, prepare: bool | None) -> list[tuple]:
    with _cursor(sql, connection) as cursor:
        _register_dumpers(cursor, connection)
        cursor.execute(sql, params, binary=True, prepare=prepare)
        return cursor.fetchall()


def _checks_the_connection(connection) -> bool:
    """Whether a read now would be the first on ``connection`` since the request began,
    with Django's health check due, outside any transaction (so that it may be run again
    on a new connection)."""
    return (
        connection.connection is not None
        and connection.health_check_enabled
        and not connection.health_check_done
        and not connection.in_atomic_block
        and connection.get_autocommit()
    )


@contextmanager
def _cursor(sql: str, connection):
    """A server-side-binding cursor on Django's connection, opened the way Django opens its
    own (health check, reconnect, psycopg errors raised as Django's); under DEBUG the
    statement is listed with the ORM's queries, like theirs. Server-side prepared
    statements only where ``DATABASE_PREPARED_STATEMENTS`` sets the connection's
    ``prepare_threshold`` (they break behind transaction-mode poolers that do not track
    them)."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    started = time.monotonic()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor
    if connection.queries_logged:
        took = time.monotonic() - started
        connection.queries_log.append({"sql": sql, "time": f"{took:.3f}"})


class Vector:
    """One vector to send as a ``vector`` parameter in binary (a query vector)."""

    def __init__(self, values: np.ndarray | Sequence[float]):
        self.values = np.asarray(values, dtype=np.float32).reshape(-1)


class VectorArray:
    """A (n, dim) matrix to send as one ``vector[]`` parameter in binary (see ``execute``)."""

    def __init__(self, matrix: np.ndarray):
        self.matrix = np.asarray(matrix, dtype=np.float32)


def _type_oids(connection) -> tuple[int, int]:
    """The oids of ``vector`` and ``vector[]`` in this database (looked up once; a standby
    is a copy of its primary, oids included)."""
    database = connection.settings_dict["NAME"]
    if database not in _oids:
        with connection.cursor() as cursor:
            cursor.execute("SELECT oid, typarray FROM pg_type WHERE oid = 'vector'::regtype")
            _oids[database] = tuple(cursor.fetchone())
    return _oids[database]


_oids: dict[str, tuple[int, int]] = {}


@functools.lru_cache
def _vector_dumper(vector_oid: int) -> type[Dumper]:
    class VectorDumper(Dumper):
        format = Format.BINARY
        oid = vector_oid

        def dump(self, obj: Vector) -> bytes:
            # pgvector's binary: uint16 dim, uint16 unused, dim big-endian float32.
            return struct.pack(">HH", obj.values.size, 0) + obj.values.astype(">f4").tobytes()

    return VectorDumper


@functools.lru_cache
def _array_dumper(vector_oid: int, array_oid: int) -> type[Dumper]:
    class VectorArrayDumper(Dumper):
        format = Format.BINARY
        oid = array_oid

        def dump(self, obj: VectorArray) -> bytes:
            n, dim = obj.matrix.shape
            # PostgreSQL's binary array: ndim, has-nulls, element type, (length, lower
            # bound) per dimension; then each element as int32 size + pgvector's own
            # binary (uint16 dim, uint16 unused, dim big-endian float32).
            rows = np.empty(
                n, dtype=[("size", ">i4"), ("dim", ">u2"), ("unused", ">u2"), ("v", ">f4", dim)]
            )
            rows["size"], rows["dim"], rows["unused"] = 4 + 4 * dim, dim, 0
            rows["v"] = obj.matrix
            return struct.pack(">iiIii", 1, 0, vector_oid, n, 1) + rows.tobytes()

    return VectorArrayDumper


def execute(sql: str, params: Sequence | dict = ()) -> int:
    """Run a write statement whose ``VectorArray`` parameters go in binary; the row count.

    Through Django's cursor every float is formatted as text in Python (~0.5 ms per
    512-d vector), which was a fifth of the embedding pipeline's CPU.
    """
    with _cursor(sql, primary) as cursor:
        _register_dumpers(cursor, primary)
        cursor.execute(sql, params, prepare=False)
        return cursor.rowcount


def _register_dumpers(cursor: psycopg.Cursor, connection) -> None:
    """Teach ``cursor`` to send ``Vector`` and ``VectorArray`` parameters in binary."""
    vector_oid, array_oid = _type_oids(connection)
    cursor.adapters.register_dumper(Vector, _vector_dumper(vector_oid))
    cursor.adapters.register_dumper(VectorArray, _array_dumper(vector_oid, array_oid))
