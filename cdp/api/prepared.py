"""Server-side prepared statements for the API's per-request reads.

Django binds parameters on the client, so PostgreSQL plans every statement again: for the
recommendations read (consent, list, experiment and fallback in one statement) planning cost
about 0.5 ms of server CPU per request, four times its execution. A statement run through
`prepared_fetchone` is PREPAREd once per database session and then EXECUTEd, so the plan is
reused; it still goes through Django's cursor (health checks, error wrapping, query logging and
`CaptureQueriesContext` see it). Prepared statements live in the session, not the transaction
(a rollback keeps them), and a new connection prepares again.

A pooler in transaction mode (PgBouncer) would hand the session to someone else: behind one, set
`CDP_API_PREPARED_STATEMENTS = False` in the settings and the same SQL runs unprepared.
"""

from __future__ import annotations

import functools
import hashlib
import re
import weakref
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import connections

_PLACEHOLDER = re.compile(r"%(s|%)")
# raw DB-API connection -> names of the statements prepared in its session
_prepared: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


@functools.cache
def _statement(label: str, sql: str) -> tuple[str, str, int]:
    """(name, PREPARE statement, parameter count) for `sql` written with %s placeholders."""
    if not re.fullmatch(r"[a-z_]+", label):
        raise ValueError("a statement label is lower-case letters and underscores")
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group(1) == "%":
            return "%"
        count += 1
        return f"${count}"

    body = _PLACEHOLDER.sub(number, sql)
    if re.search(r"%\(", sql):
        raise ValueError("named placeholders are not supported; use %s")
    digest = hashlib.sha256(body.encode()).hexdigest()[:12]
    name = f"cdp_{label}_{digest}"  # another text under the same label gets another name
    return name, f"PREPARE {name} AS {body}", count


def prepared_fetchone(
    using: str, label: str, sql: str, params: Sequence[Any]
) -> tuple[Any, ...] | None:
    """The first row of `sql` (written with %s placeholders, like `cursor.execute`) run as a
    prepared statement of this session, preparing it on first use."""
    if not getattr(settings, "CDP_API_PREPARED_STATEMENTS", True):
        with connections[using].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    name, prepare, count = _statement(label, sql)
    if len(params) != count:
        raise ValueError(f"{label}: {count} placeholders, {len(params)} parameters")
    connection = connections[using]
    with connection.cursor() as cursor:
        raw = connection.connection  # after cursor(): connected and health-checked
        names = _prepared.get(raw)
        if names is None:
            names = _prepared.setdefault(raw, set())
        if name not in names:
            cursor.execute(prepare)
            names.add(name)
        arguments = f"({', '.join(['%s'] * count)})" if count else ""
        cursor.execute(f"EXECUTE {name}{arguments}", params)
        return cursor.fetchone()
