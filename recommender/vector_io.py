"""Reading and writing pgvector columns in PostgreSQL's binary format, straight from and
into numpy.

Through the ORM a vector arrives as text (``'[0.1,0.2,…]'``) and is parsed float by float
in Python: ~0.5 ms per 384-d vector, which dominated serving. In binary a vector is
``uint16 dim, uint16 unused`` then ``dim`` big-endian float32s, one ``frombuffer`` away.
The query runs on Django's own connection (same transaction, same settings), through a
server-side-binding psycopg cursor, because Django's client-side cursors return text only.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import psycopg
from django.db import connection
from psycopg.adapt import Dumper
from psycopg.pq import Format


def decode(value: bytes | None) -> np.ndarray | None:
    """One binary pgvector value as a float32 array (None stays None)."""
    if value is None:
        return None
    return np.frombuffer(value, dtype=">f4", offset=4).astype(np.float32)


def fetch(sql: str, params: Sequence | dict = ()) -> list[tuple]:
    """Rows of ``sql`` with every column in binary: vectors come back as bytes for
    ``decode``, other types as their Python values."""
    with _cursor(sql) as cursor:
        cursor.execute(sql, params, binary=True, prepare=False)
        return cursor.fetchall()


@contextmanager
def _cursor(sql: str):
    """A server-side-binding cursor on Django's connection; under DEBUG the statement is
    listed with the ORM's queries, like theirs. No server-side prepared statements (the
    callers pass ``prepare=False``): they break behind transaction-mode poolers."""
    connection.ensure_connection()
    started = time.monotonic()
    with psycopg.Cursor(connection.connection) as cursor:
        yield cursor
    if connection.queries_logged:
        took = time.monotonic() - started
        connection.queries_log.append({"sql": sql, "time": f"{took:.3f}"})


class VectorArray:
    """A (n, dim) matrix to send as one ``vector[]`` parameter in binary (see ``execute``)."""

    def __init__(self, matrix: np.ndarray):
        self.matrix = np.asarray(matrix, dtype=np.float32)


def _type_oids() -> tuple[int, int]:
    """The oids of ``vector`` and ``vector[]`` in this database (looked up once)."""
    database = connection.settings_dict["NAME"]
    if database not in _oids:
        with connection.cursor() as cursor:
            cursor.execute("SELECT oid, typarray FROM pg_type WHERE oid = 'vector'::regtype")
            _oids[database] = tuple(cursor.fetchone())
    return _oids[database]


_oids: dict[str, tuple[int, int]] = {}


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
    vector_oid, array_oid = _type_oids()
    with _cursor(sql) as cursor:
        cursor.adapters.register_dumper(VectorArray, _array_dumper(vector_oid, array_oid))
        cursor.execute(sql, params, prepare=False)
        return cursor.rowcount
