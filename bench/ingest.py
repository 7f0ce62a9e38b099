"""Tracking API throughput: gunicorn (2 workers) against raw COPY of the same rows.

Runs in its own database (`cdp_bench_ingest` on the server of DATABASE_URL, created, migrated and
dropped at the end). A warm-up identifies every customer of the pool (their consent preferences
arrive with the events, as a consent manager sends them); then CLIENTS threads post 500-message
batches of realistic events (identify calls with e-mail, phone, name and address in
context.traits; product views, cart adds and orders with products; pages) for DURATION seconds.
The run is split into ROUNDS rounds alternating with the baseline, best of each side. The
baseline COPYs the same number of rows (plaintext payload as jsonb, the analytics columns)
into a plain table with no index. Prints events/s for both and the ratio, p50/p95 latency per
batch, and peak RSS per worker after the warm-up (and one untimed round of the client mix, which
fills the workers' bounded caches) and at the end (flat means no leak).

BENCH_SCALE shrinks the run (e.g. BENCH_SCALE=0.2); BENCH_DURATION sets the seconds;
BENCH_WORKERS the gunicorn workers (default 2; gunicorn's own advice is 2-4 per core).
BENCH_KEEP=1 keeps the database for inspection (drop it with `dropdb cdp_bench_ingest`).
The workers' data-key cache is sized as the README advises for a deployment, to the customers
active within `CDP_DEK_CACHE_SECONDS` (all USERS here, as each worker sees every customer each
round): CDP_DEK_CACHE_SIZE, when set, overrides it (10000, the default, misses half the keys).
Target ratio >= 0.20.
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid

from _common import ROOT, BenchDatabase, cpu_seconds, cpu_used, report, scaled

BENCH_DB = "cdp_bench_ingest"
BATCH = 500
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "4"))
DURATION = float(os.environ.get("BENCH_DURATION", str(max(5, scaled(30)))))
USERS = scaled(20_000)
ROUNDS = 3
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
DEK_CACHE = int(os.environ.get("CDP_DEK_CACHE_SIZE", str(USERS + USERS // 4)))


DB = BenchDatabase(BENCH_DB)
BENCH_URL = DB.url


def setup() -> str:
    DB.create()
    from cdp.ingest.services import source_create

    return source_create(name="bench", actor="system").write_key


PRODUCTS = [
    (f"sku-{n:04d}", random.Random(n).choice(["shoes", "mugs", "books", "tea"])) for n in range(500)
]


def person(n: int) -> dict:
    return {
        "email": f"customer{n}@mail-example.org",
        "phone": f"+4420794{n % 100000:05d}",
        "firstName": f"First{n}",
        "lastName": f"Last{n}",
        "address": {"street": f"{n} High Street", "city": "London", "country": "GB"},
        "plan": random.Random(n).choice(["free", "plus", "pro"]),
    }


def event(rng: random.Random, n: int, now: str) -> dict:
    user = f"user-{n}"
    context = {
        "ip": f"10.{n % 256}.{(n // 256) % 256}.7",
        "library": {"name": "analytics-python", "version": "2.1.9"},
        "consent": {"categoryPreferences": {"analytics": True, "advertising": False}},
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
    }
    base = {
        "messageId": str(uuid.uuid4()),
        "userId": user,
        "anonymousId": None,
        "timestamp": now,
        "channel": "server",
        "integrations": {"All": True},
        "context": context,
    }
    roll = rng.random()
    if roll < 0.1:
        context["traits"] = person(n)
        return {**base, "type": "identify"}
    if roll < 0.3:
        return {
            **base,
            "type": "page",
            "name": "Product",
            "properties": {"path": f"/p/{rng.randrange(500)}", "title": "Product"},
        }
    sku, category = rng.choice(PRODUCTS)
    quantity = rng.randint(1, 3)
    if roll < 0.9:
        name = rng.choice(["Product Viewed", "Product Added"])
        return {
            **base,
            "type": "track",
            "event": name,
            "properties": {
                "product_id": sku,
                "category": category,
                "price": 19.99,
                "quantity": quantity,
                "currency": "GBP",
            },
        }
    return {
        **base,
        "type": "track",
        "event": "Order Completed",
        "properties": {
            "order_id": str(uuid.uuid4())[:8],
            "total": round(19.99 * quantity, 2),
            "currency": "GBP",
            "products": [
                {"product_id": sku, "category": category, "price": 19.99, "quantity": quantity}
            ],
            "gift_message": "Happy birthday",
        },
    }


def make_batch(rng: random.Random, users: list[int]) -> dict:
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    return {"batch": [event(rng, rng.choice(users), now) for _ in range(BATCH)], "sentAt": now}


def _analyze() -> None:
    import psycopg

    with psycopg.connect(BENCH_URL, autocommit=True) as conn:
        conn.execute("ANALYZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_rss(master: int) -> dict[int, tuple[int, int]]:
    """(current RSS, peak RSS) in MB for each gunicorn worker (children of the master)."""
    out = {}
    children = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
    for pid in map(int, children.stdout.split()):
        try:
            status = open(f"/proc/{pid}/status").read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        out[pid] = (
            int(fields["VmRSS"].split()[0]) // 1024,
            int(fields["VmHWM"].split()[0]) // 1024,
        )
    return out


def postgres_pids() -> list[int]:
    """The server processes working for this benchmark: backends connected to its database and
    the WAL writer, checkpointer and background writer (not other databases' backends, which
    share the server on a development machine)."""
    import psycopg

    with psycopg.connect(BENCH_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE (datname = current_database() "
            "AND pid <> pg_backend_pid()) OR backend_type IN "
            "('walwriter', 'checkpointer', 'background writer')"
        ).fetchall()
    return [pid for (pid,) in rows]


def post_all(url: str, key: str, batches: list[bytes], latencies: list[float]) -> int:
    import requests

    session = requests.Session()
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    accepted = 0
    for data in batches:
        started = time.perf_counter()
        response = session.post(
            url, data=data, headers={"Content-Type": "application/json", "Authorization": auth}
        )
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
        accepted += response.json()["accepted"]
    return accepted


TEMPLATES = 40
PREFIX_LEN = 16


def batch_templates(users: list[int]) -> list[bytes]:
    """Batches serialised once; each send swaps in a fresh message-id prefix (a bytes replace),
    so the client spends its CPU (shared with the server on this machine) on sending only."""
    rng = random.Random(99)
    templates = []
    for t in range(TEMPLATES):
        batch = make_batch(rng, users)
        for i, message in enumerate(batch["batch"]):
            message["messageId"] = f"{'T' * PREFIX_LEN}-{t}-{i}"
        templates.append(json.dumps(batch).encode())
    return templates


def run_clients(
    url: str, key: str, users: list[int], duration: float
) -> tuple[int, float, list[float]]:
    latencies: list[float] = []
    totals = [0] * CLIENTS
    templates = batch_templates(users)
    stop_at = time.monotonic() + duration
    placeholder = b"T" * PREFIX_LEN

    def client(i: int) -> None:
        n = 0
        while time.monotonic() < stop_at:
            prefix = uuid.uuid4().hex[:PREFIX_LEN].encode()
            data = templates[(i + n) % TEMPLATES].replace(placeholder, prefix)
            n += 1
            totals[i] += post_all(url, key, [data], latencies)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(totals), time.perf_counter() - started, latencies


def raw_copy(count: int) -> float:
    """COPY `count` rows of the same shape (plaintext) into a plain table; rows per second."""
    import psycopg

    rng = random.Random(7)
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    rows = []
    for _ in range(count):
        message = event(rng, rng.randrange(USERS), now)
        rows.append(
            (
                str(uuid.uuid4()),
                message["messageId"],
                message["userId"],
                message["type"],
                message.get("event", message.get("name", "")),
                now,
                now,
                json.dumps(message.get("properties", {})),
                json.dumps(message),
            )
        )
    with psycopg.connect(BENCH_URL) as conn:
        conn.execute("DROP TABLE IF EXISTS raw_events")
        conn.execute(
            "CREATE TABLE raw_events (id uuid, message_id text, user_id text, "
            "type text, name text, ts timestamptz, received_at timestamptz, "
            "properties jsonb, payload jsonb)"
        )
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy("COPY raw_events FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return count / (time.perf_counter() - started)


def main() -> None:
    # A SIGTERM (timeout, Ctrl-C from a supervisor) still stops gunicorn and drops the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    key = setup()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": BENCH_URL,
        "CDP_ENV": "development",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "CDP_DEK_CACHE_SIZE": str(DEK_CACHE),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "cdp.wsgi:application",
            "--workers",
            str(WORKERS),
            "--bind",
            f"127.0.0.1:{port}",
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/batch"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        users = list(range(USERS))
        # Warm-up: every customer identifies once (profiles, identities, consent); not timed.
        rng = random.Random(1)
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        warm = []
        for start in range(0, USERS, BATCH):
            messages = []
            for n in users[start : start + BATCH]:
                message = event(rng, n, now)
                message.update(type="identify")
                message["context"]["traits"] = person(n)
                messages.append(message)
            warm.append(json.dumps({"batch": messages, "sentAt": now}).encode())
        post_all(url, key, warm, [])
        # One untimed round of the client mix: each worker's bounded caches (data keys,
        # identifiers) fill to their working size, so the RSS read below is the steady state and
        # growth after it would be a leak.
        run_clients(url, key, users, DURATION / ROUNDS)
        # A database in steady state has planner statistics (autovacuum would get there).
        _analyze()
        rss_start = worker_rss(server.pid)
        workers = list(rss_start)
        # Rounds of clients and of raw COPY in alternation, best of each: a burst of load from
        # elsewhere on this shared machine then hits both sides alike.
        accepted, elapsed, latencies = 0, 0.0, []
        project = raw = 0.0
        used = [0.0, 0.0, 0.0]  # CPU seconds of workers, postgres, this process: client rounds
        for _ in range(ROUNDS):
            pg = postgres_pids()
            before = (cpu_seconds(workers), cpu_seconds(pg), sum(os.times()[:2]))
            got, took, lat = run_clients(url, key, users, DURATION / ROUNDS)
            after = (cpu_seconds(workers), cpu_seconds(pg), sum(os.times()[:2]))
            used[0] += cpu_used(before[0], after[0])
            used[1] += cpu_used(before[1], after[1])
            used[2] += after[2] - before[2]
            accepted, elapsed = accepted + got, elapsed + took
            latencies.extend(lat)
            project = max(project, got / took)
            raw = max(raw, raw_copy(max(got, 10_000)))
        rss_end = worker_rss(server.pid)
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p95 = latencies[int(len(latencies) * 0.95) - 1] * 1000
        print(
            f"ingest: {accepted:,} events in {elapsed:.1f}s from {CLIENTS} clients, "
            f"{len(latencies)} batches of {BATCH}; latency per batch p50 {p50:.0f} ms, "
            f"p95 {p95:.0f} ms; {WORKERS} workers, data-key cache {DEK_CACHE:,} for "
            f"{USERS:,} customers"
        )
        print(
            f"cpu over {elapsed:.1f}s of client rounds on {os.cpu_count()} cores: workers "
            f"{used[0]:.1f}s, postgres {used[1]:.1f}s, bench clients {used[2]:.1f}s; per event: "
            f"workers {used[0] / accepted * 1e6:.0f} us, postgres {used[1] / accepted * 1e6:.0f} us"
        )
        for pid in sorted(rss_end):
            start = rss_start.get(pid, (0, 0))
            print(
                f"worker {pid}: RSS {start[0]} MB after warm-up (peak {start[1]} MB), "
                f"{rss_end[pid][0]} MB at end (peak {rss_end[pid][1]} MB)"
            )
        report("ingest", "events", project, raw)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        from django.db import connections

        connections.close_all()
        if os.environ.get("BENCH_KEEP") != "1":
            DB.drop()


if __name__ == "__main__":
    main()
