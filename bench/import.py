"""CSV profile import throughput and memory: the importer against raw COPY of the same file.

Generates a profile CSV (e-mail, phone, first and last name, country, two attributes) of ROWS
rows (1,000,000; BENCH_SCALE shrinks it) and imports it with `manage.py import_csv`'s code path
(the same service the worker runs: decrypt-stream, clean, resolve, encrypt, write per chunk) in
a child process, whose peak RSS is read from the kernel; a second child imports a 100,000-row
file first, so the memory of the two sizes can be compared (constant memory: the 1M peak should
be within 1.2x of the 100k one). The baseline COPYs the same CSV file into a plain table with
the same columns as text in the same database. Runs in its own database (`cdp_bench_import`).
Targets: ratio >= 0.15; peak memory at ROWS within 1.2x of that at 100,000 rows.
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


def run_child(path: Path, source: str) -> dict:
    env = {**os.environ, "DATABASE_URL": DB.url, "CELERY_BROKER_URL": "memory://"}
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(path), source],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
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


def main() -> None:
    DB.create()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
            small, large = Path(tmp) / "small.csv", Path(tmp) / "large.csv"
            generate(small, SMALL, offset=10_000_000)
            size = generate(large, ROWS, offset=0)
            print(f"generated {ROWS:,} rows ({size / 1e6:.0f} MB) and {SMALL:,} rows", flush=True)
            first = run_child(small, "bench-small")
            print(f"project {SMALL:,} rows: {first}", flush=True)
            main_run = run_child(large, "bench-large")
            print(f"project {ROWS:,} rows: {main_run}", flush=True)
            raw = max(raw_copy(large) for _ in range(3))
            assert main_run["created"] == ROWS, main_run
            memory_ratio = main_run["peak_kib"] / first["peak_kib"]
            print(
                f"peak memory: {first['peak_kib'] / 1024:,.0f} MiB at {SMALL:,} rows, "
                f"{main_run['peak_kib'] / 1024:,.0f} MiB at {ROWS:,} rows, "
                f"ratio {memory_ratio:.2f} (target <= 1.2)",
                flush=True,
            )
            report("import", "rows", ROWS / main_run["seconds"], raw)
    finally:
        DB.drop()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
