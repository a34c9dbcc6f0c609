"""Reading pgvector columns in PostgreSQL's binary format, straight into numpy.

Through the ORM a vector arrives as text (``'[0.1,0.2,…]'``) and is parsed float by float
in Python: ~0.5 ms per 384-d vector, which dominated serving. In binary a vector is
``uint16 dim, uint16 unused`` then ``dim`` big-endian float32s, one ``frombuffer`` away.
The query runs on Django's own connection (same transaction, same settings), through a
server-side-binding psycopg cursor, because Django's client-side cursors return text only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import psycopg
from django.db import connection


def decode(value: bytes | None) -> np.ndarray | None:
    """One binary pgvector value as a float32 array (None stays None)."""
    if value is None:
        return None
    return np.frombuffer(value, dtype=">f4", offset=4).astype(np.float32)


def fetch(sql: str, params: Sequence | dict = ()) -> list[tuple]:
    """Rows of ``sql`` with every column in binary: vectors come back as bytes for
    ``decode``, other types as their Python values."""
    connection.ensure_connection()
    started = time.monotonic()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, binary=True)
        rows = cursor.fetchall()
    if connection.queries_logged:  # DEBUG: listed with the ORM's queries, like theirs
        took = time.monotonic() - started
        connection.queries_log.append({"sql": sql, "time": f"{took:.3f}"})
    return rows
