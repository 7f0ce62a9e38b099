"""Audit of issue #5: "re-uploading the same file changes nothing" also when the two uploads run
at the same time (two workers), on new profiles and on existing ones."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest
from django.db import connection

from cdp.ingest.imports.services import (
    import_job_create,
    import_job_run,
    import_source_get_or_create,
)
from cdp.ingest.models import ImportJob, ImportStatus
from cdp.profiles.models import Customer, Identity, SourceRecord
from tests.ingest.imports.helpers import assert_reconciles

ROWS = 600


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings: Any, tmp_path: Any) -> None:
    """This module's encrypted uploads go to a temporary directory, not the checkout's var/."""
    settings.CDP_IMPORT_DIR = str(tmp_path / "uploads")


def _file(name: str) -> bytes:
    lines = ["customer_id,email,first_name,plan"]
    lines += [f"{i},u{i}@shop.example,{name}{i},p{i % 3}" for i in range(ROWS)]
    return ("\n".join(lines) + "\n").encode()


def _job(content: bytes, file_name: str) -> ImportJob:
    source = import_source_get_or_create(name="crm", actor="test")
    return import_job_create(
        source=source,
        kind="profiles",
        file=io.BytesIO(content),
        file_name=file_name,
        actor="test",
        start=True,
    )


def _run_both(first: ImportJob, second: ImportJob) -> list[ImportJob]:
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def run(job_id: Any) -> None:
        try:
            barrier.wait(10)
            status = "continue"
            while status == "continue":
                status = import_job_run(job_id=job_id, actor="test")
        except BaseException as exc:  # reported by the test below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(j.pk,)) for j in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    return [ImportJob.objects.get(pk=j.pk) for j in (first, second)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_the_same_file_imported_twice_at_once_is_stored_once(existing: bool, settings: Any) -> None:
    settings.CDP_IMPORT_CHUNK_ROWS = 50
    if existing:  # the customers exist (an earlier file); both uploads change every name
        import_job_run(job_id=_job(_file("Old"), "old.csv").pk)
        assert Customer.objects.count() == ROWS
    records_before = SourceRecord.objects.count()
    content = _file("New")

    jobs = _run_both(_job(content, "a.csv"), _job(content, "b.csv"))

    for job in jobs:
        assert job.status == ImportStatus.COMPLETED, job.error_message
        assert_reconciles(job)
        assert (job.rows_done, job.rejected) == (ROWS, 0)
    applied = sum(j.updated if existing else j.created for j in jobs)
    assert applied == ROWS  # each row applied by exactly one of the two jobs
    assert sum(j.duplicates for j in jobs) == ROWS
    assert Customer.objects.count() == ROWS
    assert Identity.objects.filter(kind="external_id").count() == ROWS
    assert Identity.objects.filter(kind="email").count() == ROWS
    assert SourceRecord.objects.count() == records_before + ROWS
    assert {c.first_name for c in Customer.objects.all()} == {f"New{i}" for i in range(ROWS)}
