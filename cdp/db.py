"""Cursors on Django's connection that bind parameters server-side.

Django's psycopg cursors bind on the client: every value is quoted into the statement's text,
so an array of thousands of ids or a megabyte of ciphertext goes as text for the server to
parse back. The set-based paths (tracking batches, import chunks, erasure, export, the data
keys) send their arrays and blobs as binary parameters through these cursors instead; they
run in Django's connection and its current transaction.
"""

from __future__ import annotations

from typing import Any


def raw_cursor() -> Any:
    """A plain psycopg cursor (no Django wrappers: the hot paths skip their cost)."""
    import psycopg
    from django.db import connection

    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def binding_cursor() -> Any:
    """The same through Django's cursor wrapper (its query log, execute wrappers and error
    translation), for statements tests and debugging should see."""
    from django.db import connection

    return connection._prepare_cursor(raw_cursor())
