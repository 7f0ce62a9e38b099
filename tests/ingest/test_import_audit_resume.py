"""Audit of issue #5: a run that dies inside a chunk (after its writes, before its commit) is
resumed with exact counts, for transactions (events, anonymous invoices) and for profiles with
consent columns (ledger entries, which are append-only, must not be written twice). The real
SIGKILL of a worker is tests/ingest/imports/test_worker.py; this covers the other kinds of
writes, in-process and fast."""

from __future__ import annotations

import gzip
import io
from typing import Any

import pandas as pd
import pytest

from cdp.ingest.imports import services
from cdp.ingest.models import Event, ImportJob, ImportStatus
from cdp.profiles.models import Customer, SourceRecord
from consent.models import ConsentEvent
from tests.ingest.imports.helpers import DATA, assert_reconciles

pytestmark = pytest.mark.django_db

KEY = ["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings: Any, tmp_path: Any) -> None:
    """This module's encrypted uploads go to a temporary directory, not the checkout's var/."""
    settings.CDP_IMPORT_DIR = str(tmp_path / "uploads")


class Died(Exception):
    pass


def _dying_on_chunk(monkeypatch: pytest.MonkeyPatch, name: str, number: int) -> None:
    """The chunk writer `name` does all its writes on call `number`, then the process "dies"
    before the chunk's transaction commits."""
    real = getattr(services, name)
    calls = {"n": 0}

    def writer(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        result = real(*args, **kwargs)
        if calls["n"] == number:
            raise Died
        return result

    monkeypatch.setattr(services, name, writer)


def _start(content: bytes, kind: str, options: dict[str, Any] | None = None) -> ImportJob:
    source = services.import_source_get_or_create(name="shop", actor="test")
    return services.import_job_create(
        source=source,
        kind=kind,
        file=io.BytesIO(content),
        file_name="file.csv",
        actor="test",
        options=options,
        start=True,
    )


def _resume(job: ImportJob) -> ImportJob:
    status = "continue"
    while status == "continue":
        status = services.import_job_run(job_id=job.pk, actor="test")
    return ImportJob.objects.get(pk=job.pk)


def test_transactions_resume_after_a_death_inside_a_chunk_with_exact_counts(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CDP_IMPORT_CHUNK_ROWS = 400
    with gzip.open(DATA / "uci_online_retail" / "online_retail.csv.gz", "rb") as handle:
        data = b"".join(next(handle) for _ in range(2_001))
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    lines = frame.drop_duplicates(subset=KEY)
    job = _start(data, "transactions", {"currency": "GBP"})
    _dying_on_chunk(monkeypatch, "transactions_chunk", 3)

    with pytest.raises(Died):
        services.import_job_run(job_id=job.pk, actor="test")

    stopped = ImportJob.objects.get(pk=job.pk)
    assert (stopped.status, stopped.rows_done) == (ImportStatus.RUNNING, 800)
    assert Event.objects.count() == stopped.created  # the third chunk left nothing
    monkeypatch.undo()
    done = _resume(job)
    assert done.status == ImportStatus.COMPLETED, done.error_message
    assert_reconciles(done)
    assert (done.rows_done, done.rejected) == (len(frame), 0)
    assert (done.created, done.duplicates) == (len(lines), len(frame) - len(lines))
    assert Event.objects.count() == len(lines)
    anonymous = lines[lines.CustomerID == ""].InvoiceNo.nunique()
    assert Customer.objects.count() == lines[lines.CustomerID != ""].CustomerID.nunique() + (
        anonymous
    )
    assert done.attempts == 2


def test_profiles_with_consents_resume_without_a_ledger_entry_twice(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CDP_IMPORT_CHUNK_ROWS = 100
    rows = 450
    body = "customer_id,email,marketing_opt_in,marketing_opt_in_date\n" + "".join(
        f"{i},p{i}@shop.example,{'yes' if i % 2 else 'no'},2024-03-0{1 + i % 9}\n"
        for i in range(rows)
    )
    job = _start(body.encode(), "profiles")
    _dying_on_chunk(monkeypatch, "profiles_chunk", 2)

    with pytest.raises(Died):
        services.import_job_run(job_id=job.pk, actor="test")

    assert ImportJob.objects.get(pk=job.pk).rows_done == 100
    assert ConsentEvent.objects.count() == 100
    monkeypatch.undo()
    done = _resume(job)
    assert done.status == ImportStatus.COMPLETED
    assert_reconciles(done)
    assert (done.rows_done, done.created) == (rows, rows)
    assert done.stats["consents_recorded"] == rows
    assert ConsentEvent.objects.count() == rows
    assert ConsentEvent.objects.filter(channel="import", granted=True).count() == rows // 2
    assert sorted(SourceRecord.objects.values_list("row_number", flat=True)) == list(
        range(2, rows + 2)
    )
