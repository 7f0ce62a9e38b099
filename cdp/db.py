"""Cursors on Django's connection that bind parameters server-side, and what rows written
by binary COPY share (time-ordered ids, jsonb values, ids as bytes).

Django's psycopg cursors bind on the client: every value is quoted into the statement's text,
so an array of thousands of ids or a megabyte of ciphertext goes as text for the server to
parse back. The set-based paths (tracking batches, import chunks, erasure, export, the data
keys) send their arrays and blobs as binary parameters through these cursors instead; they
run in Django's connection and its current transaction.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import psycopg
from django.db import connection
from psycopg.adapt import Dumper
from psycopg.pq import Format


def raw_cursor() -> Any:
    """A plain psycopg cursor (no Django wrappers: the hot paths skip their cost)."""
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def binding_cursor() -> Any:
    """The same through Django's cursor wrapper (its query log, execute wrappers and error
    translation), for statements tests and debugging should see."""
    return connection._prepare_cursor(raw_cursor())


# UUIDv7: 48-bit milliseconds, version 7, then random bits (RFC 9562).
_UUID7_MASK = ((1 << 80) - 1) & ~((0xF << 76) | (0x3 << 62))
_UUID7_BITS = (0x7 << 76) | (0x2 << 62)  # version 7, RFC 4122 variant


def time_ordered_ids(count: int) -> list[bytes]:
    """`count` UUIDv7s as their 16 bytes, for rows written in bulk: new rows land at the right
    edge of the primary-key index instead of at random pages, which keeps the insert cheap. The
    random bits of all of them come from one read of the system's generator."""
    stamp = (time.time_ns() // 1_000_000) << 80 | _UUID7_BITS
    pool = os.urandom(10 * count)
    return [
        (stamp | (int.from_bytes(pool[i : i + 10], "big") & _UUID7_MASK)).to_bytes(16, "big")
        for i in range(0, 10 * count, 10)
    ]


def time_ordered_uuid() -> uuid.UUID:
    """One UUIDv7: the id of a row that many more will follow into a large table (customers:
    their id is also the key of their data key, identities, source records and events), so
    that each lands at the right edge of those indexes, not at a random page."""
    return uuid.UUID(bytes=time_ordered_ids(1)[0])


def json_bytes(value: Any) -> bytes:
    """A jsonb column's value for a binary COPY: orjson, or the standard library for what it
    refuses (integers beyond 64 bits, keys that are not strings)."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, ensure_ascii=False).encode()


class UUIDBytesDumper(Dumper):
    """Binary uuid that also takes the 16 bytes themselves (`time_ordered_ids`), for a COPY
    whose rows carry ids as bytes: no UUID object per row."""

    format = Format.BINARY
    oid = 2950  # uuid

    def dump(self, obj: Any) -> bytes:
        return obj if obj.__class__ is bytes else obj.bytes


def copy_binary(
    table: str, columns: Sequence[str], types: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Rows into `table` by one binary COPY in Django's connection and transaction: ids as
    UUIDs or their 16 bytes (`UUIDBytesDumper`), jsonb through `json_bytes`. Errors are
    psycopg's (callers that retry on Django's wrap the call in `connection.wrap_database_errors`,
    those that read the violated constraint catch psycopg's own)."""
    with raw_cursor() as cursor:
        psycopg.types.json.set_json_dumps(json_bytes, context=cursor)
        cursor.adapters.register_dumper(uuid.UUID, UUIDBytesDumper)
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        with cursor.copy(statement) as copy:
            copy.set_types(list(types))
            for row in rows:
                copy.write_row(row)
