"""Audit of issue #5: the admin preview masks every personal column (not only e-mail, phone and
first name), a header with bytes invalid in its encoding fails the job, the work per chunk is
set-based, and the findings this audit did not fix (strict xfails, so a fix is noticed)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cdp.ingest.imports.selectors import import_job_preview
from cdp.ingest.imports.services import (
    import_files_purge,
    import_job_run,
)
from cdp.ingest.imports.storage import job_file_path
from cdp.ingest.models import ImportJob, ImportStatus
from cdp.profiles.models import Customer
from cdp.profiles.roles import CONSENT_ADMIN
from tests.ingest.imports.helpers import run_import, upload
from tests.roles import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings: Any, tmp_path: Any) -> None:
    """This module's encrypted uploads go to a temporary directory, not the checkout's var/."""
    settings.CDP_IMPORT_DIR = str(tmp_path / "uploads")


WIDE = {
    "Customer No": "CUST-778812",
    "E-mail": "margaret.hamilton@shop.example",
    "Tel": "+44 20 7946 0321",
    "First Name": "Margaret",
    "Surname": "Hamilton",
    "Date of birth": "1936-08-17",
    "Address": "12 Apollo Way",
    "City": "Paoli",
    "Postcode": "IN47454",
    "IBAN": "GB29NWBK60161331926819",
    "Notes": "allergic to penicillin",
    "marketing_opt_in": "yes",
    "plan": "gold",
    "Country": "United Kingdom",
}
SHOWN = {"plan", "Country"}  # non-personal by the property classes / a country


def test_the_mapping_preview_masks_every_personal_column(django_user_model) -> None:
    body = (",".join(WIDE) + "\n" + ",".join(WIDE.values()) + "\n").encode()
    client = client_for(django_user_model, CONSENT_ADMIN)

    response = client.post(
        "/admin/ingest/importjob/add/",
        {"file": SimpleUploadedFile("wide.csv", body), "source": "crm", "kind": "profiles"},
    )
    job = ImportJob.objects.get()
    page = client.get(response["Location"]).content.decode()
    preview = dict(zip(job.headers, import_job_preview(job)[0], strict=True))

    assert job.status == ImportStatus.MAPPING
    for header, value in WIDE.items():
        if header in SHOWN:
            assert preview[header] == value
            continue
        assert value not in preview[header], header
        assert preview[header].endswith("***") or "*" in preview[header], header
        for part in value.replace("@", " ").replace("-", " ").split():
            if len(part) >= 4 and part not in ("shop.example",):
                assert part not in page, (header, part)


def test_a_header_with_bytes_invalid_in_its_encoding_fails_the_job() -> None:
    # 0x81 and 0x8D have no character in CP1252 (what a non-UTF-8 Western file is read as).
    body = b"email,Stra\x81e\x8d\na@shop.example,x\n"

    job = run_import(body)

    assert (job.status, job.error_code) == (ImportStatus.FAILED, "import_encoding")
    assert job.headers == [] and not job_file_path(job.pk).exists()


def _body(rows: int, name: str) -> bytes:
    lines = ["customer_id,email,phone,first_name,country,plan"]
    lines += [
        f"{i},u{i}@shop.example,+4420794{i:05d},{name}{i},France,p{i % 3}" for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def _queries_of_one_chunk(content: bytes) -> int:
    job = upload(content, start=True)
    with CaptureQueriesContext(connection) as captured:
        assert import_job_run(job_id=job.pk) == ImportStatus.COMPLETED
    return len(captured.captured_queries)


@pytest.mark.parametrize("rows", [20, 300])
def test_a_chunk_of_new_profiles_costs_the_same_queries_for_20_or_300_rows(
    rows: int, settings: Any
) -> None:
    """Issue #5 'Inside': set-based per chunk (Django-visible queries; the COPYs are not
    counted by CaptureQueriesContext, but no statement per row may appear)."""
    settings.CDP_IMPORT_CHUNK_ROWS = 1_000

    queries = _queries_of_one_chunk(_body(rows, "N"))

    assert Customer.objects.count() == rows
    assert queries < 30, queries  # 21 at the time of the audit, for any number of rows


def test_a_chunk_updating_existing_profiles_costs_no_query_per_row(settings: Any) -> None:
    settings.CDP_IMPORT_CHUNK_ROWS = 1_000
    _queries_of_one_chunk(_body(300, "N"))

    queries = _queries_of_one_chunk(_body(300, "M"))  # every first name changes

    assert Customer.objects.filter().count() == 300
    assert queries < 60, queries


def test_an_abandoned_upload_is_deleted_eventually() -> None:
    job = upload(b"email\njane.doe@shop.example\n")
    assert job.status == ImportStatus.MAPPING and job_file_path(job.pk).exists()

    import_files_purge(now=timezone.now() + dt.timedelta(days=365))

    assert not job_file_path(job.pk).exists()
    job.refresh_from_db()
    assert (job.status, job.error_code) == (ImportStatus.FAILED, "import_abandoned")
    assert job.file_deleted_at is not None and "7 days" in job.error_message


def test_an_upload_waiting_for_its_mapping_is_kept_until_the_deadline(settings: Any) -> None:
    settings.CDP_IMPORT_ABANDONED_DAYS = 3
    job = upload(b"email\njane.doe@shop.example\n")

    assert import_files_purge(now=timezone.now() + dt.timedelta(days=2)) == 0
    job.refresh_from_db()
    assert job.status == ImportStatus.MAPPING and job_file_path(job.pk).exists()

    assert import_files_purge(now=timezone.now() + dt.timedelta(days=3, minutes=1)) == 1
    assert not job_file_path(job.pk).exists()
    settings.CDP_IMPORT_ABANDONED_DAYS = 0
    other = upload(b"email\njohn.doe@shop.example\n")
    assert import_files_purge(now=timezone.now() + dt.timedelta(days=365)) == 0
    assert job_file_path(other.pk).exists()
