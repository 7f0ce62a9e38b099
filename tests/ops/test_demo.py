"""`make demo` (python -m cdp.demo): admin once, worker and web up, clean stop on signals."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from cdp.demo import ensure_admin
from cdp.embedded import stop as stop_embedded

BASE_DIR = Path(__file__).resolve().parents[2]
RUNNING = "Press Ctrl-C to stop the web server, the worker and the database."


@pytest.mark.django_db
def test_ensure_admin_creates_a_superuser_once_and_prints_the_password_once() -> None:
    first_out, second_out = io.StringIO(), io.StringIO()

    password = ensure_admin(out=first_out)
    again = ensure_admin(out=second_out)

    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password(password)
    assert admin.password != password
    assert first_out.getvalue() == (
        f"Created admin user 'admin' with password {password} "
        "(shown once; only its hash is stored).\n"
    )
    assert again is None
    assert password not in second_out.getvalue()
    assert second_out.getvalue() == (
        "Admin user 'admin' exists. To set a new password: "
        ".venv/bin/python manage.py changepassword admin\n"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Demo:
    """`python -m cdp.demo` in a subprocess, its output collected line by line."""

    def __init__(self, var_dir: Path, port: int) -> None:
        env = {
            k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}
        }
        env.update(CDP_VAR_DIR=str(var_dir), CDP_QUEUE_PREFIX="")
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cdp.demo", "--addr", f"127.0.0.1:{port}"],
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_until_running(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while RUNNING not in self.lines:
            assert self.process.poll() is None, f"demo exited early:\n{self.output}"
            assert time.monotonic() < deadline, f"demo not running after {timeout}s:\n{self.output}"
            time.sleep(0.2)

    def stop(self, signum: int, timeout: float = 60) -> int:
        self.process.send_signal(signum)
        status = self.process.wait(timeout)
        self._reader.join(5)
        return status


def _get(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, json.loads(response.read())


@pytest.fixture
def demo_var_dir():
    """A private var/ for the demo. Inside the checkout because the embedded server runs as
    an unprivileged user when tests run as root and must reach its data directory."""
    (BASE_DIR / "var").mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="test-demo-", dir=BASE_DIR / "var"))
    yield path
    if (path / "pgdata" / "postmaster.pid").exists():
        stop_embedded(path)
    shutil.rmtree(path, ignore_errors=True)


def test_demo_runs_worker_and_web_then_stops_everything_and_reuses_it_next_time(
    demo_var_dir: Path,
) -> None:
    port = _free_port()
    first = Demo(demo_var_dir, port)
    try:
        first.wait_until_running()
        health = _get(f"http://127.0.0.1:{port}/healthz")
        ready = _get(f"http://127.0.0.1:{port}/readyz")
    finally:
        first_status = first.stop(signal.SIGINT)

    assert health == (200, {"status": "ok"})
    assert ready == (200, {"status": "ok", "checks": {"database": "ok", "broker": "ok"}})
    password = re.search(r"Created admin user 'admin' with password (\S+) ", first.output)[1]
    assert f"  admin     http://127.0.0.1:{port}/admin/  (user admin, password {password})" in (
        first.lines
    )
    assert f"  API docs  http://127.0.0.1:{port}/api/docs/" in first.lines
    assert first_status == 0
    assert first.lines[-2:] == ["Embedded PostgreSQL stopped.", "Demo stopped."]
    assert not (demo_var_dir / "pgdata" / "postmaster.pid").exists()

    second = Demo(demo_var_dir, port)
    try:
        second.wait_until_running()
    finally:
        second_status = second.stop(signal.SIGTERM)

    assert second_status == 0
    assert password not in second.output
    assert "Admin user 'admin' exists." in second.output
    assert f"  admin     http://127.0.0.1:{port}/admin/  (user admin)" in second.lines
    assert not (demo_var_dir / "pgdata" / "postmaster.pid").exists()


def test_demo_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        result = subprocess.run(
            [sys.executable, "-m", "cdp.demo", "--addr", f"127.0.0.1:{port}"],
            cwd=BASE_DIR,
            env={**os.environ, "CDP_VAR_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 1
    assert result.stderr == f"127.0.0.1:{port} is in use; stop what runs there or pass --addr.\n"
    assert not (tmp_path / "pgdata").exists()
