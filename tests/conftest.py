"""Shared fixtures. Tests run against real PostgreSQL (DATABASE_URL or the embedded server).

Tests that cross the broker use `celery_worker_process`, a real `celery worker` subprocess bound
to the test database:

    @pytest.mark.worker
    @pytest.mark.django_db(transaction=True)
    def test_something(celery_worker_process): ...

`transaction=True` matters: the worker is another process and sees only committed rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
WORKER_START_SECONDS = 90
WORKER_STOP_SECONDS = 30


def _test_queue_prefix() -> str:
    """Unique per test run and per xdist worker, so runs sharing one broker never mix tasks."""
    from django.conf import settings

    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")[:8] or uuid.uuid4().hex[:8]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{settings.CDP_QUEUE_PREFIX}test-{run}-{worker}-"


def _forget_routing(app: Any) -> None:
    """Drop Celery's cached queue objects so a changed task_default_queue takes effect."""
    for name in ("queues", "default_queue", "router"):
        app.amqp.__dict__.pop(name, None)


@pytest.fixture(scope="session", autouse=True)
def celery_queue_prefix() -> Iterator[str]:
    """Route this test process's tasks to its own queues (and tell subprocesses to do the same).

    Settings are loaded before any conftest runs, so the prefix is applied to the Celery app here.
    """
    from cdp.celery import app

    prefix = _test_queue_prefix()
    saved_queue = app.conf.task_default_queue
    saved_env = os.environ.get("CDP_QUEUE_PREFIX")
    app.conf.task_default_queue = f"{prefix}default"
    os.environ["CDP_QUEUE_PREFIX"] = prefix
    _forget_routing(app)
    yield prefix
    app.conf.task_default_queue = saved_queue
    if saved_env is None:
        os.environ.pop("CDP_QUEUE_PREFIX", None)
    else:
        os.environ["CDP_QUEUE_PREFIX"] = saved_env
    _forget_routing(app)


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for a Django connection's settings, Unix-socket hosts included."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = settings_dict.get("PASSWORD") or ""
    credentials = f"{user}:{quote(password, safe='')}" if password else user
    host = quote(str(settings_dict.get("HOST") or ""), safe="")
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    name = quote(settings_dict["NAME"], safe="")
    return f"postgresql://{credentials}@{host}{port}/{name}"


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_until_ready(process: subprocess.Popen[bytes], log: Path) -> None:
    """Ready means a task made the round trip: broker, worker, database and result backend."""
    from celery.exceptions import TimeoutError as CeleryTimeoutError

    from cdp.tasks import worker_selfcheck

    result = worker_selfcheck.delay()
    deadline = time.monotonic() + WORKER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"celery worker exited with {process.returncode} while starting:\n{_log_tail(log)}"
            )
        try:
            result.get(timeout=1)
            return
        except CeleryTimeoutError:
            continue
    raise RuntimeError(
        f"celery worker did not answer within {WORKER_START_SECONDS}s:\n{_log_tail(log)}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # warm shutdown: finish the current task, then exit
    try:
        process.wait(WORKER_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def celery_worker_process(
    django_db_setup: None,
    django_db_blocker: Any,
    celery_queue_prefix: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[subprocess.Popen[bytes]]:
    """A real `celery -A cdp worker` on this test database and this process's queue.

    Started once per session (per xdist worker), after the test database exists, and stopped
    before it is dropped. Its log is in the session's temporary directory.
    """
    from django.db import connection

    from cdp.celery import app

    queue = app.conf.task_default_queue
    env = os.environ.copy()
    env["DATABASE_URL"] = database_url(connection.settings_dict)
    env["CDP_QUEUE_PREFIX"] = celery_queue_prefix
    env.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    log = tmp_path_factory.mktemp("celery-worker") / "worker.log"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "cdp",
        "worker",
        "--pool",
        "solo",
        "--queues",
        queue,
        "--hostname",
        f"{celery_queue_prefix}worker@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "INFO",
    ]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with django_db_blocker.unblock():
            _wait_until_ready(process, log)
        yield process
    finally:
        _stop(process)
        _delete_queue(app, queue)


def _delete_queue(app: Any, queue: str) -> None:
    """Leave no per-run queue or binding behind on a shared broker."""
    from django.conf import settings

    try:
        with app.connection_for_write() as conn:
            bound = app.amqp.queues[queue].bind(conn.default_channel)
            bound.declare()  # the transport forgets a binding only when it knows it
            bound.delete()
    except Exception as exc:  # cleanup must not mask a test failure
        print(f"could not delete test queue {queue}: {exc}", file=sys.stderr)
    control = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("control_folder")
    if control:  # the filesystem transport keeps one bindings file per exchange
        (Path(control) / f"{queue}.exchange").unlink(missing_ok=True)


# The audit log refuses TRUNCATE while it holds rows; this autouse fixture empties it (test
# databases only) before pytest-django flushes after transactional tests.
from cdp.audit.testing import audit_log_emptied_before_flush  # noqa: E402, F401
