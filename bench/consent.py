"""Consent: recording decisions and the "allowed for P" filter, against raw PostgreSQL.

Runs in its own database (`cdp_bench` on the server of DATABASE_URL, created, migrated and
dropped at the end), so nothing touches the development data.

1. consent-record: 100,000 decisions through `consent_record_many` (chunks of 5,000, as the CSV
   import does: keyed hash chain under the advisory lock, ledger INSERT, state upsert, audit
   entry) against raw multi-row INSERTs of the very same ledger rows. Target ratio >= 0.25.
2. consent-filter: `customers_allowed_for("profiling")` over 1,000,000 customers (ids fetched)
   against the equivalent hand-written SQL (LEFT JOIN, purpose defaults known in advance).
   Target ratio >= 0.67 (within 1.5x).

BENCH_SCALE shrinks both (e.g. BENCH_SCALE=0.05).
"""

from __future__ import annotations

import gc
import random
import time
import uuid
from collections.abc import Callable

from _common import BenchDatabase, report, scaled

BENCH_DB = "cdp_bench"
DECISIONS = scaled(100_000)
CUSTOMERS = scaled(1_000_000)
CHUNK = 5_000
REPEATS = 3


DB = BenchDatabase(BENCH_DB)


def setup() -> None:
    DB.create()
    import logging

    from cdp.celery import app

    # Withdrawal hooks run in-process (none are registered here): no broker needed.
    app.conf.task_always_eager = True
    logging.getLogger("celery").setLevel(logging.WARNING)


def execute(sql: str, params: list | None = None) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def copy_rows(table: str, columns: list[str], rows: list[tuple]) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def reset_ledger() -> None:
    """Empty ledger, states and audit log (their guards suspended: a throwaway database)."""
    for table in ("consent_consentevent", "audit_auditentry"):
        execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    execute("TRUNCATE consent_consentevent, consent_consentstate, audit_auditentry")
    for table in ("consent_consentevent", "audit_auditentry"):
        execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def timed(run: Callable[[], int]) -> float:
    started = time.perf_counter()
    items = run()
    return items / (time.perf_counter() - started)


def create_customers(count: int, rng: random.Random) -> list[tuple[uuid.UUID, str, str]]:
    from django.utils import timezone

    now = timezone.now()
    people = []
    rows = []
    for _ in range(count):
        customer_id = uuid.uuid4()
        jurisdiction = rng.choices(["gdpr", "ccpa", "other"], weights=[4, 3, 3])[0]
        status = rng.choices(["active", "restricted", "erased"], weights=[94, 3, 3])[0]
        people.append((customer_id, jurisdiction, status))
        rows.append((customer_id, status, jurisdiction, "", "{}", now, now))
    copy_rows(
        "profiles_customer",
        ["id", "status", "jurisdiction", "country", "attributes", "created_at", "updated_at"],
        rows,
    )
    execute("ANALYZE profiles_customer")
    return people


def bench_record(rng: random.Random) -> tuple[float, float]:
    from django.db import transaction

    from cdp.profiles.models import Customer
    from consent.models import ConsentEvent
    from consent.services import ConsentDecision, consent_record_many

    purposes = ["analytics", "profiling", "marketing", "sale_sharing", "personalization"]
    people = create_customers(max(1, DECISIONS // len(purposes)), rng)
    customers = [Customer(id=cid, jurisdiction=j, status="active") for cid, j, _ in people]
    decisions = [
        ConsentDecision(
            customer=customers[i // len(purposes) % len(customers)],
            purpose_code=purposes[i % len(purposes)],
            granted=rng.random() < 0.8,
            channel="import",
            method="csv",
            ip="198.51.100.7",
            user_agent="bench/1.0",
        )
        for i in range(DECISIONS)
    ]
    recorded: list[ConsentEvent] = []
    gc.collect()
    gc.freeze()

    def project() -> int:
        recorded.clear()
        for start in range(0, DECISIONS, CHUNK):
            recorded.extend(
                consent_record_many(decisions=decisions[start : start + CHUNK], actor="bench")
            )
        return DECISIONS

    columns = [
        "seq", "receipt_id", "customer_id", "purpose_code", "purpose_version", "notice_hash",
        "granted", "at", "recorded_at", "expires_at", "channel", "method", "jurisdiction",
        "ip_hash", "user_agent_hash", "actor", "proof", "prev_hash", "hash",
    ]  # fmt: skip
    types = [
        "bigint", "uuid", "uuid", "varchar", "integer", "varchar", "boolean", "timestamptz",
        "timestamptz", "timestamptz", "varchar", "varchar", "varchar", "bytea", "bytea",
        "varchar", "jsonb", "bytea", "bytea",
    ]  # fmt: skip
    insert = (
        f"INSERT INTO consent_consentevent ({', '.join(columns)}) SELECT * FROM unnest("
        + ", ".join(f"%s::{t}[]" for t in types)
        + ")"
    )

    def raw() -> int:
        from django.db import connection

        with connection.cursor() as cursor:
            for start in range(0, DECISIONS, CHUNK):
                chunk = rows[start : start + CHUNK]
                with transaction.atomic():
                    cursor.execute(insert, [list(col) for col in zip(*chunk, strict=True)])
        return DECISIONS

    best_project = best_raw = 0.0
    rows: list[tuple] = []
    for _ in range(REPEATS):
        reset_ledger()
        best_project = max(best_project, timed(project))
        import json

        rows = [
            (
                e.seq, e.receipt_id, e.customer_id, e.purpose_code, e.purpose_version,
                e.notice_hash, e.granted, e.at, e.recorded_at, e.expires_at, e.channel,
                e.method, e.jurisdiction, e.ip_hash, e.user_agent_hash, e.actor,
                json.dumps(e.proof), e.prev_hash, e.hash,
            )
            for e in recorded
        ]  # fmt: skip
        reset_ledger()
        best_raw = max(best_raw, timed(raw))
    reset_ledger()
    execute("TRUNCATE profiles_customer CASCADE")
    return best_project, best_raw


def bench_filter(rng: random.Random) -> tuple[float, float, int]:
    from django.db import connection
    from django.utils import timezone

    from consent.selectors import customers_allowed_for

    people = create_customers(CUSTOMERS, rng)
    now = timezone.now()
    states = []
    for customer_id, _, _ in people:
        if rng.random() < 0.3:
            granted = rng.random() < 0.7
            expires = None
            if granted and rng.random() < 0.2:
                expires = now + (rng.random() - 0.5) * 2 * (now - now.replace(year=now.year - 1))
            states.append((customer_id, "profiling", granted, now, expires, "api", "form", 1, 0))
    copy_rows(
        "consent_consentstate",
        ["customer_id", "purpose_code", "granted", "since", "expires_at", "channel", "method",
         "purpose_version", "event_seq"],
        states,
    )  # fmt: skip
    execute("ANALYZE consent_consentstate")
    # The million setup tuples would otherwise be walked by every garbage collection while the
    # result rows are allocated, taxing whichever side allocates more; they are not measured.
    del people, states
    gc.collect()
    gc.freeze()

    raw_sql = """
        SELECT c.id FROM profiles_customer c
        LEFT JOIN consent_consentstate s
               ON s.customer_id = c.id AND s.purpose_code = 'profiling'
        WHERE c.status = 'active'
          AND ((s.granted AND (s.expires_at IS NULL OR s.expires_at > %s))
               OR (s.id IS NULL AND c.jurisdiction = 'ccpa'))
    """
    counts: dict[str, int] = {}

    def project() -> int:
        ids = list(customers_allowed_for("profiling", now=now).values_list("id", flat=True))
        counts["project"] = len(ids)
        return CUSTOMERS

    def raw() -> int:
        with connection.cursor() as cursor:
            cursor.execute(raw_sql, [now])
            counts["raw"] = len(cursor.fetchall())
        return CUSTOMERS

    best_project = best_raw = 0.0
    for _ in range(REPEATS):
        best_project = max(best_project, timed(project))
        best_raw = max(best_raw, timed(raw))
    assert counts["project"] == counts["raw"], counts
    return best_project, best_raw, counts["project"]


def main() -> None:
    setup()
    try:
        rng = random.Random(7)
        record_project, record_raw = bench_record(rng)
        filter_project, filter_raw, allowed = bench_filter(rng)
        from django.db import connections

        connections.close_all()
    finally:
        DB.drop()
    print(
        f"# {DECISIONS:,} decisions in chunks of {CHUNK:,}; filter over {CUSTOMERS:,} customers "
        f"({allowed:,} allowed); best of {REPEATS}, alternating"
    )
    report("consent-record", "decisions", record_project, record_raw)
    report("consent-filter", "customers", filter_project, filter_raw)


if __name__ == "__main__":
    main()
