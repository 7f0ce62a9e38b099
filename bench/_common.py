"""Shared helpers for the benchmarks: Django setup, scaling and the result line format."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    import django

    django.setup()


class BenchDatabase:
    """A throwaway database beside DATABASE_URL's, so a benchmark never touches real data.

    Constructing it points DATABASE_URL at the bench database (before Django loads settings);
    `create()` drops any leftover, creates and migrates it; `drop()` removes it.
    """

    def __init__(self, name: str) -> None:
        from urllib.parse import urlsplit, urlunsplit

        base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/cdp"
        parts = urlsplit(base)
        self.name = name
        self.url = urlunsplit(parts._replace(path=f"/{name}"))
        self.admin_url = urlunsplit(parts._replace(path="/postgres"))
        os.environ["DATABASE_URL"] = self.url

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def create(self) -> None:
        self.drop()
        self.admin(f"CREATE DATABASE {self.name}")
        setup_django()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)

    def drop(self) -> None:
        self.admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def scaled(default: int) -> int:
    """Sizes shrink with BENCH_SCALE (e.g. 0.1 for a quick look)."""
    return max(1, int(default * float(os.environ.get("BENCH_SCALE", "1"))))


def best_rate(run: Callable[[], int], *, repeats: int = 3) -> float:
    """Items per second of the fastest of `repeats` runs: the least disturbed by a noisy machine."""
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        items = run()
        elapsed = time.perf_counter() - started
        best = max(best, items / elapsed)
    return best


def best_rates(
    project: Callable[[], int], raw: Callable[[], int], *, repeats: int = 5
) -> tuple[float, float]:
    """Best rates of both sides, measured in alternation so that a burst of load elsewhere on
    this shared machine hits both sides alike."""
    best_project = best_raw = 0.0
    for _ in range(repeats):
        best_project = max(best_project, best_rate(project, repeats=1))
        best_raw = max(best_raw, best_rate(raw, repeats=1))
    return best_project, best_raw


def report(name: str, unit: str, project: float, raw: float) -> str:
    line = (
        f"bench {name}: project {project:,.0f} {unit}/s, raw {raw:,.0f} {unit}/s, "
        f"ratio {project / raw:.2f}"
    )
    print(line, flush=True)
    return line


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU seconds so far of each live process in `pids` (from /proc)."""
    out = {}
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two readings by processes alive at both (autovacuum workers and
    closed connections come and go)."""
    return sum(after[pid] - before[pid] for pid in before if pid in after)
