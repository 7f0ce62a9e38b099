"""The deferred residue sweep: what an erasure could not verify at once, verified for many.

An erasure's scan (`residue_scan` with CDP_RESIDUE_SCAN_FULL_MAX_ROWS) answers from indexes
for large tables and leaves their other columns (unindexed ids, text, JSON) to this sweep, so
its cost follows the subject, not the database. The sweep takes every certificate left to it
(`sweep_due`, no sweep yet), collects the ids and blind indexes of those erasures from the
erasure journal and searches every table of the schema once for all of them: a table whose
searchable columns all lead an index is probed through the indexes, any other table is read
once. Its cost is per table per sweep, not per erasure.

Text and JSON are searched for the ids' hex digits, with or without dashes and in any case:
each run of 32 or more hex digits and dashes, dashes removed, is cut into every 32-digit window
and the windows are looked up in the set of ids (one hash lookup per window, whatever the
number of erasures covered). That finds everything the erasure's `LIKE` patterns find.

The result is a signed `ResidueSweep` naming the requests it covered; each certificate is linked
to it (outside the certificate's signed content). Residue outside the declared exceptions fails
the requests whose subject was found, and every sweep is in the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from cdp.audit.chain import lock_id
from cdp.audit.services import SYSTEM, audit_record
from cdp.privacy.models import (
    DataSubjectRequest,
    ErasureCertificate,
    ErasureJournal,
    RequestStatus,
    ResidueSweep,
)
from cdp.privacy.subjects import ScanColumn, ScanTable, _quote, exception_tables, scan_catalog

SWEEP_LOCK = lock_id("privacy-residue-sweep")
DEFAULT_LIMIT = 10_000  # certificates per sweep: bounds the id arrays; the rest go next time
_HEX_RUN = "[0-9a-f-]{32,}"


@dataclass
class _Subjects:
    """Who the covered erasures were about: hex id or hex blind index -> request ids."""

    ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    blobs: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def _subjects(certificates: list[dict[str, Any]]) -> _Subjects:
    found = _Subjects()
    by_request = {str(c["request_id"]): c for c in certificates}
    for request_id, customer_id in DataSubjectRequest.objects.filter(
        id__in=list(by_request)
    ).values_list("id", "customer_id"):
        if customer_id is not None:  # an unknown subject is scanned for the id it was asked by
            found.ids[customer_id.hex].add(str(request_id))
    for entry in ErasureJournal.objects.filter(request_id__in=list(by_request)).values(
        "request_id", "customer_ids", "identifiers"
    ):
        request_id = str(entry["request_id"])
        for customer_id in entry["customer_ids"]:
            found.ids[uuid.UUID(str(customer_id)).hex].add(request_id)
        for _, value in entry["identifiers"]:
            found.blobs[value].add(request_id)
    return found


def _match(column: ScanColumn, position: int) -> str:
    """A LATERAL branch yielding (position, hex key) for each subject this column holds."""
    q = f"t.{_quote(column.name)}"
    if column.kind == "uuid":
        return f"SELECT {position}, replace({q}::text, '-', '') WHERE {q} = ANY(%(ids)s::uuid[])"
    if column.kind == "bytea":
        return f"SELECT {position}, encode({q}, 'hex') WHERE {q} = ANY(%(blobs)s::bytea[])"
    return (
        f"SELECT DISTINCT {position}, w.key "  # noqa: S608 (quoted catalogue names; values bound)
        f"FROM regexp_matches(lower({q}::text), '{_HEX_RUN}', 'g') AS r(m) "
        "CROSS JOIN LATERAL (SELECT replace(r.m[1], '-', '') AS h) AS s "
        "CROSS JOIN LATERAL (SELECT substr(s.h, i, 32) AS key "
        "FROM generate_series(1, length(s.h) - 31) AS i) AS w "
        "WHERE w.key = ANY(%(hexes)s::text[])"
    )


def _statements(table: ScanTable, subjects: _Subjects) -> list[tuple[str, list[str]]]:
    """How to search one table: index probes when every searchable column leads an index, one
    read of the table otherwise. Each statement returns (column position, hex key, rows)."""
    columns = [c for c in table.columns if (subjects.blobs if c.kind == "bytea" else subjects.ids)]
    if not columns:
        return []
    names = [c.name for c in columns]
    source = _quote(table.name)
    if all(c.probe for c in columns):
        statements = []
        for n, c in enumerate(columns):
            q = _quote(c.name)
            if c.kind == "uuid":
                key, values = f"replace({q}::text, '-', '')", "%(ids)s::uuid[]"
            else:
                key, values = f"encode({q}, 'hex')", "%(blobs)s::bytea[]"
            statements.append(
                (
                    f"SELECT {n}, {key}, count(*) FROM {source} "  # noqa: S608
                    f"WHERE {q} = ANY({values}) GROUP BY 2",
                    names,
                )
            )
        return statements
    branches = " UNION ALL ".join(_match(c, n) for n, c in enumerate(columns))
    return [
        (
            f"SELECT m.pos, m.key, count(*) FROM {source} AS t "  # noqa: S608
            f"CROSS JOIN LATERAL ({branches}) AS m(pos, key) GROUP BY m.pos, m.key",
            names,
        )
    ]


def _signature(content: dict[str, Any]) -> str:
    body = json.dumps(content, sort_keys=True, default=str).encode()
    key = hmac.new(settings.CDP_AUDIT_KEY, b"cdp-residue-sweep|v1", hashlib.sha256).digest()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _content(sweep: ResidueSweep) -> dict[str, Any]:
    return {
        "id": str(sweep.id),
        "started_at": sweep.started_at.isoformat(),
        "finished_at": sweep.finished_at.isoformat(),
        "covered": sweep.covered,
        "tables_scanned": sweep.tables_scanned,
        "columns_scanned": sweep.columns_scanned,
        "residue": sweep.residue,
        "exceptions": sweep.exceptions,
        "clean": sweep.clean,
    }


def sweep_verify(sweep: ResidueSweep) -> bool:
    """Does the sweep still carry the signature of its content (not edited since)?"""
    return hmac.compare_digest(_signature(_content(sweep)), sweep.signature)


def residue_sweep_run(*, actor: str = SYSTEM, limit: int = DEFAULT_LIMIT) -> ResidueSweep | None:
    """Sweep for every erasure left to a sweep; None when there is none or another sweep holds
    the lock. Safe to run twice: a certificate is covered by one sweep only."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [SWEEP_LOCK])
        row = cursor.fetchone()
        if not (row and row[0]):
            return None
    try:
        return _sweep(actor=actor, limit=limit)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [SWEEP_LOCK])


def _sweep(*, actor: str, limit: int) -> ResidueSweep | None:
    from cdp.db import raw_cursor

    certificates = list(
        ErasureCertificate.objects.filter(sweep_due=True, sweep__isnull=True)
        .order_by("created_at")
        .values("id", "request_id")[:limit]
    )
    if not certificates:
        return None
    started = timezone.now()
    subjects = _subjects(certificates)
    params = {
        "ids": [uuid.UUID(h) for h in subjects.ids],
        "hexes": list(subjects.ids),
        "blobs": [bytes.fromhex(h) for h in subjects.blobs],
    }
    allowed = exception_tables()
    hits: dict[tuple[str, str], dict[str, Any]] = {}
    tables = columns = 0
    for table in scan_catalog():
        statements = _statements(table, subjects)
        if not statements:
            continue
        tables += 1
        columns += len(statements[0][1])
        for sql, names in statements:
            with raw_cursor() as cursor:
                # Not prepared: a generic plan would search the id arrays linearly per row.
                cursor.execute(sql, params, prepare=False)
                rows = cursor.fetchall()
            for position, key, count in rows:
                owners = subjects.ids.get(key) or subjects.blobs.get(key) or set()
                hit = hits.setdefault(
                    (table.name, names[position]),
                    {"table": table.name, "column": names[position], "rows": 0, "requests": set()},
                )
                hit["rows"] += count
                hit["requests"] |= owners
    residue, exceptions = [], []
    failed: set[str] = set()
    for (table_name, _), hit in sorted(hits.items()):
        entry = {**hit, "requests": sorted(hit["requests"])}
        if table_name in allowed:
            exceptions.append({**entry, **allowed[table_name]})
        else:
            residue.append(entry)
            failed |= hit["requests"]
    covered = sorted(str(c["request_id"]) for c in certificates)
    with transaction.atomic():
        sweep = ResidueSweep(
            started_at=started,
            finished_at=timezone.now(),
            covered=covered,
            tables_scanned=tables,
            columns_scanned=columns,
            residue=residue,
            exceptions=exceptions,
            clean=not residue,
            actor=actor,
        )
        sweep.signature = _signature(_content(sweep))
        sweep.save(force_insert=True)
        ErasureCertificate.objects.filter(id__in=[c["id"] for c in certificates]).update(
            sweep=sweep
        )
        _record_outcome(sweep, covered, failed)
        audit_record(
            actor=actor,
            action="privacy.residue_sweep",
            object_type="privacy.residuesweep",
            object_id=str(sweep.id),
            details={
                "erasures": len(covered),
                "tables_scanned": tables,
                "columns_scanned": columns,
                "clean": sweep.clean,
                "residue_tables": sorted({r["table"] for r in residue}),
                "requests_failed": sorted(failed),
            },
        )
    return sweep


def _record_outcome(sweep: ResidueSweep, covered: list[str], failed: set[str]) -> None:
    """Each covered request's report names the sweep; residue fails the request (the
    certificate stays as signed: it states what was left to this sweep)."""
    from cdp.db import raw_cursor

    table = _quote(DataSubjectRequest._meta.db_table)
    with raw_cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET report = report || jsonb_build_object("  # noqa: S608
            "'sweep', %(sweep)s::text, 'sweep_clean', NOT (id = ANY(%(failed)s::uuid[]))), "
            "status = CASE WHEN id = ANY(%(failed)s::uuid[]) THEN %(status)s ELSE status END, "
            "updated_at = now() WHERE id = ANY(%(covered)s::uuid[])",
            {
                "sweep": str(sweep.id),
                "failed": [uuid.UUID(r) for r in failed],
                "covered": [uuid.UUID(r) for r in covered],
                "status": RequestStatus.FAILED.value,
            },
        )
    for request_id in sorted(failed):
        audit_record(
            actor=sweep.actor,
            action="privacy.erasure_residue",
            object_type="privacy.request",
            object_id=request_id,
            details={
                "sweep": str(sweep.id),
                "residue_tables": sorted(
                    {r["table"] for r in sweep.residue if request_id in r["requests"]}
                ),
            },
        )
