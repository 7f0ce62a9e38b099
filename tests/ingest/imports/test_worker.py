"""Imports through a real Celery worker, and a worker killed in the middle of a large import."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from cdp.ingest.models import ImportJob, ImportStatus
from cdp.profiles.models import Customer, Identity, SourceRecord
from tests.conftest import BASE_DIR, _stop, _wait_until_ready, database_url
from tests.ingest.imports.helpers import assert_reconciles, upload

ROWS = 12_000


def wait_for(job_id, predicate, seconds: float = 120) -> ImportJob:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = ImportJob.objects.get(pk=job_id)
        if predicate(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job state not reached in {seconds}s: {job.status} {job.rows_done}")


def generated_profiles(rows: int) -> bytes:
    lines = ["customer_id,email,first_name,country,plan"]
    lines += [f"{i},user{i}@shop.example,Name{i},France,p{i % 3}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def start_job(content: bytes):
    return upload(content, start=True)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_queued_import_is_run_by_the_worker(celery_worker_process) -> None:
    job = start_job(generated_profiles(300))

    job = wait_for(job.pk, lambda j: j.status in (ImportStatus.COMPLETED, ImportStatus.FAILED))

    assert job.status == ImportStatus.COMPLETED
    assert (job.rows_done, job.created) == (300, 300)
    assert Customer.objects.count() == 300


def _worker(queue_prefix: str, log: Path, chunk_rows: int) -> subprocess.Popen[bytes]:
    from cdp.celery import app

    env = os.environ.copy()
    env["DATABASE_URL"] = database_url(connection.settings_dict)
    env["CDP_QUEUE_PREFIX"] = queue_prefix
    env["CDP_IMPORT_CHUNK_ROWS"] = str(chunk_rows)
    env.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "cdp",
                "worker",
                "--pool",
                "solo",
                "--queues",
                f"{app.conf.task_default_queue},{queue_prefix}killable",
                "--hostname",
                f"{queue_prefix}killable-{time.monotonic_ns()}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_killing_the_worker_mid_import_then_resuming_gives_exact_counts(
    celery_queue_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cdp.ingest.imports.services import import_jobs_resume
    from cdp.ingest.imports.tasks import import_job_run

    # Only the killable workers may run this job: a session worker of an earlier test in this
    # process consumes the default queue too, and killing the killable one would not stop it.
    queue = f"{celery_queue_prefix}killable"
    monkeypatch.setattr(
        import_job_run, "delay", lambda job_id: import_job_run.apply_async((job_id,), queue=queue)
    )

    log = tmp_path / "worker.log"
    first = _worker(celery_queue_prefix, log, chunk_rows=250)
    try:
        _wait_until_ready(first, log)
        job = start_job(generated_profiles(ROWS))
        running = wait_for(job.pk, lambda j: j.rows_done >= 1_000, seconds=180)
        os.killpg(first.pid, signal.SIGKILL)  # no warm shutdown: mid-chunk
        first.wait(10)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    stopped = ImportJob.objects.get(pk=job.pk)
    assert stopped.status == ImportStatus.RUNNING
    assert running.rows_done <= stopped.rows_done < ROWS
    assert Customer.objects.count() == stopped.created  # only committed chunks exist

    second = _worker(celery_queue_prefix, log, chunk_rows=2_000)
    try:
        _wait_until_ready(second, log)
        assert import_jobs_resume(stale_seconds=0) == [str(job.pk)]
        done = wait_for(job.pk, lambda j: j.status != ImportStatus.RUNNING, seconds=300)
    finally:
        _stop(second)

    assert done.status == ImportStatus.COMPLETED, done.error_message
    assert_reconciles(done)
    assert (done.rows_done, done.created, done.updated, done.duplicates) == (ROWS, ROWS, 0, 0)
    assert done.attempts == 2
    assert Customer.objects.count() == ROWS
    assert SourceRecord.objects.count() == ROWS
    assert Identity.objects.filter(kind="external_id").count() == ROWS
    rows = sorted(SourceRecord.objects.values_list("row_number", flat=True))
    assert rows == list(range(2, ROWS + 2))  # none twice, none skipped
