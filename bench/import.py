"""CSV profile import throughput and memory: the importer against raw COPY of the same file.

Generates a profile CSV (e-mail, phone, first and last name, country, two attributes) of ROWS
rows (1,000,000; BENCH_SCALE shrinks it) and imports it with `manage.py import_csv`'s code path
(the same service the worker runs: decrypt-stream, clean, resolve, encrypt, write per chunk) in
a child process, whose peak RSS is read from the kernel; a second child imports a 100,000-row
file first, so the memory of the two sizes can be compared (constant memory: the 1M peak should
be within 1.2x of the 100k one). The baseline COPYs the same CSV file into a plain table with
the same columns as text in the same database. Runs in its own database (`cdp_bench_import`).
Targets: ratio >= 0.15; peak memory at ROWS within 1.2x of that at 100,000 rows.

A second comparison, `import-required-work`, measures the same file against the work the issue
requires of every row done with the raw libraries alone (see `required_work`): it shows how far
the raw `COPY` line is from what any importer meeting the issue can reach on this machine.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, BenchDatabase, report, scaled, setup_django

BENCH_DB = "cdp_bench_import"
ROWS = scaled(1_000_000)
# The memory comparison: 100,000 rows against 1,000,000 (a tenth of ROWS when scaled down).
SMALL = min(100_000, max(ROWS // 10, 1_000))
COUNTRIES = ["United Kingdom", "France", "DE", "Spain", "Italy", "USA", "Netherlands", "Ireland"]
FIRST = ["Ann", "Bob", "Chloé", "Dmitri", "Eve", "Farah", "Gus", "Hana", "Ivo", "Jo"]
LAST = ["Smith", "Martin", "Müller", "García", "Rossi", "Kowalski", "Dubois", "Ng", "Ito", "Ali"]

DB = BenchDatabase(BENCH_DB)


def generate(path: Path, rows: int, offset: int) -> int:
    """A realistic profile file; every row a different person (offset keeps runs apart)."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("email,phone,first_name,last_name,country,plan,lifetime_value\n")
        for n in range(offset, offset + rows):
            plan = ("free", "plus", "pro")[n % 3]
            out.write(
                f"user{n}@example-shop.com,+4474{n:08d},{FIRST[n % 10]},{LAST[n * 7 % 10]},"
                f"{COUNTRIES[n % 8]},{plan},{(n * 37) % 5000}.{n % 100:02d}\n"
            )
    return path.stat().st_size


def child(path: str, source: str) -> None:
    """Import `path` in this process and print seconds and peak RSS (KiB) as JSON."""
    # bench/consent.py would shadow the consent package: this process needs only the project.
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != ROOT / "bench"]
    setup_django()
    from cdp.ingest.imports.services import (
        import_job_create,
        import_job_run,
        import_source_get_or_create,
    )
    from cdp.ingest.models import ImportJob

    src = import_source_get_or_create(name=source, actor="bench")
    mapping = {
        "email": "email",
        "phone": "phone",
        "first_name": "first_name",
        "last_name": "last_name",
        "country": "country",
        "plan": "attribute:plan",
        "lifetime_value": "attribute:lifetime_value",
    }
    started, cpu_started = time.perf_counter(), time.process_time()
    with open(path, "rb") as handle:
        job = import_job_create(
            source=src,
            kind="profiles",
            file=handle,
            file_name="bench.csv",
            actor="bench",
            mapping=mapping,
            start=False,
        )
    ImportJob.objects.filter(pk=job.pk).update(status="queued")
    status = "continue"
    while status == "continue":
        status = import_job_run(job_id=job.pk, actor="bench")
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    job.refresh_from_db()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": elapsed,
                # The importing process's own CPU: the rest of `seconds` is waiting (mostly on
                # PostgreSQL), which tells the two costs apart.
                "cpu_seconds": round(cpu, 2),
                "peak_kib": peak,
                "rows": job.rows_done,
                "created": job.created,
                "rejected": job.rejected,
                "status": job.status,
            }
        ),
        flush=True,
    )


def _broker() -> tuple[str, str]:
    """The broker the import publishes its follow-up tasks to (real-time segment checks of the
    touched profiles, 1,000 ids a message), and a queue prefix nobody consumes. Redis when
    CELERY_BROKER_URL names it, as in production: with kombu's in-process `memory://` broker
    the unconsumed messages stayed in the importing process, ~50 MiB at 1,000,000 rows, which
    read as the importer's memory growing with the file."""
    url = os.environ.get("CELERY_BROKER_URL", "")
    if url.startswith("redis"):
        return url, f"bench-import-{os.getpid()}-"
    return "memory://", ""


def _purge(url: str, prefix: str) -> None:
    if not prefix:
        return
    import redis

    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)


def run_child(path: Path, source: str) -> dict:
    url, prefix = _broker()
    env = {
        **os.environ,
        "DATABASE_URL": DB.url,
        "CELERY_BROKER_URL": url,
        "CDP_QUEUE_PREFIX": prefix,
    }
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(path), source],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        _purge(url, prefix)
    return json.loads(out.stdout.strip().splitlines()[-1])


def raw_copy(path: Path) -> float:
    """COPY the same file into a plain table: rows per second."""
    import psycopg

    with psycopg.connect(DB.url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS raw_profiles")
        conn.execute(
            "CREATE TABLE raw_profiles (email text, phone text, first_name text, last_name text,"
            " country text, plan text, lifetime_value text)"
        )
        started = time.perf_counter()
        with (
            conn.cursor() as cursor,
            cursor.copy("COPY raw_profiles FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
            path.open("rb") as handle,
        ):
            while block := handle.read(1024 * 1024):
                copy.write(block)
        elapsed = time.perf_counter() - started
        count = conn.execute("SELECT count(*) FROM raw_profiles").fetchone()[0]
        conn.execute("DROP TABLE raw_profiles")
    return count / elapsed


# The required-work baseline: what the issue asks of every imported row, done with the raw
# libraries and nothing of the project's (no ORM, no resolution beyond one probe per chunk, no
# merges, consent, survivorship, progress or audit). Per row: parse the CSV line, normalise the
# e-mail, parse the phone to E.164 (`phonenumbers`), map the country (`pycountry`, memoised),
# three HMAC-SHA256 blind indexes (e-mail, phone, row fingerprint), a fresh 256-bit data key
# wrapped by the KEK, seven AES-256-GCM seals with their associated data (four profile fields,
# two identity values, the source record), then binary COPY of five rows into tables with only
# the keys deduplication relies on; per chunk of 5,000, the identity and row-fingerprint probes
# and one commit.
REQUIRED_DDL = """
CREATE TABLE raw_keys (subject uuid PRIMARY KEY, wrapped bytea);
CREATE TABLE raw_customers (id uuid PRIMARY KEY, country text, email bytea, phone bytea,
    first_name bytea, last_name bytea, email_index bytea, phone_index bytea, attributes jsonb);
CREATE TABLE raw_identities (id uuid PRIMARY KEY, customer_id uuid, kind text, value bytea,
    value_index bytea, UNIQUE (kind, value_index));
CREATE TABLE raw_records (id uuid PRIMARY KEY, customer_id uuid, source text, row_index bytea,
    data bytea, UNIQUE (source, row_index));
"""
REQUIRED_DROP = "DROP TABLE IF EXISTS raw_keys, raw_customers, raw_identities, raw_records"


def _copy_rows(cursor: object, table: str, types: list[str], rows: list[tuple]) -> None:
    with cursor.copy(f"COPY {table} FROM STDIN WITH (FORMAT binary)") as copy:  # type: ignore[attr-defined]
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def required_work(path: Path, chunk: int = 5_000) -> tuple[float, dict[str, float]]:
    """Rows per second of the required per-row work with the raw libraries, and its CPU split
    (microseconds per row) into cleaning, cryptography and the rest (mostly PostgreSQL)."""
    import csv
    import hmac
    import uuid

    import phonenumbers
    import psycopg
    import pycountry
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    kek = AESGCM(os.urandom(32))
    index_keys = {name: os.urandom(32) for name in ("email", "phone", "row")}
    countries: dict[str, str] = {}
    costs = {"clean": 0.0, "crypto": 0.0}

    def country_code(name: str) -> str:
        if name not in countries:
            try:
                countries[name] = pycountry.countries.lookup(name).alpha_2
            except LookupError:
                countries[name] = {"USA": "US", "United Kingdom": "GB"}.get(name, "")
        return countries[name]

    def seal(cipher: AESGCM, value: bytes, where: bytes, subject: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + cipher.encrypt(nonce, value, b"v1|" + where + b"|" + subject)

    with psycopg.connect(DB.url) as conn:
        conn.execute(REQUIRED_DROP)
        conn.execute(REQUIRED_DDL)
        conn.commit()
        started = time.perf_counter()
        done = 0
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader)
            while True:
                lines = [line for _, line in zip(range(chunk), reader, strict=False)]
                if not lines:
                    break
                t0 = time.perf_counter()
                clean = []
                for email, phone, first, last, country, plan, value in lines:
                    email = email.strip().lower()
                    if "@" not in email:
                        continue
                    number = phonenumbers.parse(phone, "GB")
                    if not phonenumbers.is_valid_number(number):
                        continue
                    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                    row = (email, e164, first, last, country_code(country), plan, value)
                    clean.append(row)
                t1 = time.perf_counter()
                keys, customers, identities, records = [], [], [], []
                for email, e164, first, last, country, plan, value in clean:
                    cid = uuid.uuid4()
                    subject = cid.bytes
                    email_index = hmac.digest(index_keys["email"], email.encode(), "sha256")
                    phone_index = hmac.digest(index_keys["phone"], e164.encode(), "sha256")
                    record = json.dumps([email, e164, first, last, country, plan, value])
                    row_index = hmac.digest(index_keys["row"], record.encode(), "sha256")
                    dek = os.urandom(32)
                    nonce = os.urandom(12)
                    keys.append((cid, nonce + kek.encrypt(nonce, dek, subject)))
                    cipher = AESGCM(dek)
                    customers.append(
                        (
                            cid,
                            country,
                            seal(cipher, email.encode(), b"customer.email", subject),
                            seal(cipher, e164.encode(), b"customer.phone", subject),
                            seal(cipher, first.encode(), b"customer.first_name", subject),
                            seal(cipher, last.encode(), b"customer.last_name", subject),
                            email_index,
                            phone_index,
                            json.dumps({"plan": plan, "lifetime_value": value}),
                        )
                    )
                    for kind, plain, index in (
                        ("email", email, email_index),
                        ("phone", e164, phone_index),
                    ):
                        iid = uuid.uuid4()
                        blob = seal(cipher, plain.encode(), b"identity.value", iid.bytes)
                        identities.append((iid, cid, kind, blob, index))
                    rid = uuid.uuid4()
                    blob = seal(cipher, record.encode(), b"sourcerecord.data", rid.bytes)
                    records.append((rid, cid, "bench", row_index, blob))
                t2 = time.perf_counter()
                costs["clean"] += t1 - t0
                costs["crypto"] += t2 - t1
                with conn.cursor() as cursor:
                    cursor.execute(
                        "SELECT value_index FROM raw_identities "
                        "WHERE kind = ANY('{email,phone}') AND value_index = ANY(%s)",
                        [[i[4] for i in identities]],
                    )
                    cursor.fetchall()
                    cursor.execute(
                        "SELECT row_index FROM raw_records WHERE source = 'bench' "
                        "AND row_index = ANY(%s)",
                        [[r[3] for r in records]],
                    )
                    cursor.fetchall()
                    _copy_rows(cursor, "raw_keys", ["uuid", "bytea"], keys)
                    _copy_rows(
                        cursor,
                        "raw_customers",
                        ["uuid", "text", *["bytea"] * 6, "jsonb"],
                        customers,
                    )
                    _copy_rows(
                        cursor,
                        "raw_identities",
                        ["uuid", "uuid", "text", "bytea", "bytea"],
                        identities,
                    )
                    _copy_rows(
                        cursor, "raw_records", ["uuid", "uuid", "text", "bytea", "bytea"], records
                    )
                conn.commit()
                done += len(records)
        elapsed = time.perf_counter() - started
        conn.execute(REQUIRED_DROP)
        conn.commit()
    per_row = {name: round(seconds / done * 1e6, 1) for name, seconds in costs.items()}
    per_row["rest"] = round(elapsed / done * 1e6 - per_row["clean"] - per_row["crypto"], 1)
    return done / elapsed, per_row


def main() -> None:
    DB.create()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
            small, large = Path(tmp) / "small.csv", Path(tmp) / "large.csv"
            generate(small, SMALL, offset=10_000_000)
            size = generate(large, ROWS, offset=0)
            print(f"generated {ROWS:,} rows ({size / 1e6:.0f} MB) and {SMALL:,} rows", flush=True)
            print(f"broker for the import's follow-up tasks: {_broker()[0]}", flush=True)
            first = run_child(small, "bench-small")
            print(f"project {SMALL:,} rows: {first}", flush=True)
            main_run = run_child(large, "bench-large")
            print(f"project {ROWS:,} rows: {main_run}", flush=True)
            raw = max(raw_copy(large) for _ in range(3))
            required, split = required_work(large)
            print(
                f"required work with the raw libraries: {required:,.0f} rows/s, "
                f"{required / raw:.3f} of raw COPY; microseconds per row: {split}",
                flush=True,
            )
            assert main_run["created"] == ROWS, main_run
            memory_ratio = main_run["peak_kib"] / first["peak_kib"]
            print(
                f"peak memory: {first['peak_kib'] / 1024:,.0f} MiB at {SMALL:,} rows, "
                f"{main_run['peak_kib'] / 1024:,.0f} MiB at {ROWS:,} rows, "
                f"ratio {memory_ratio:.2f} (target <= 1.2)",
                flush=True,
            )
            # The comparison, then the same run against the required-work floor.
            report("import-required-work", "rows", ROWS / main_run["seconds"], required)
            report("import", "rows", ROWS / main_run["seconds"], raw)
    finally:
        DB.drop()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
