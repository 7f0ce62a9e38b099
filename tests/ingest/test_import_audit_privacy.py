"""Audit of issue #5: personal values in bad cells never reach the error report, the job's
error, its counts and quality report, the API, the admin's JSON and CSV, the audit log or the
logs; and a file without a header row does not turn its first row into column names."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from rest_framework.test import APIClient

from cdp.api.services import api_token_create
from cdp.audit.models import AuditEntry
from cdp.ingest.models import ImportJob, ImportStatus
from cdp.profiles.roles import CONSENT_ADMIN
from tests.ingest.imports.helpers import assert_reconciles, run_import
from tests.roles import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings: Any, tmp_path: Any) -> None:
    """This module's encrypted uploads go to a temporary directory, not the checkout's var/."""
    settings.CDP_IMPORT_DIR = str(tmp_path / "uploads")


# Each bad cell holds something personal; none of these strings may appear anywhere but the
# encrypted upload.
SECRETS = (
    "jane.secret@@nowhere",
    "Jane Secret 555",
    "12 Privet Drive",
    "Jane's birthday",
    "maybe Jane",
    "Secret Corp",
    "Ragged Person",
    "+999 Secret",
    "Kim Secretsdottir",
)
PROFILES = (
    b"customer_id,email,phone,country,birth_date,marketing_opt_in,first_name\n"
    b"1,ok@shop.example,,France,1980-01-02,yes,Ann\n"
    b"2,jane.secret@@nowhere,,France,1980-01-02,yes,Bea\n"
    b"3,b@shop.example,Jane Secret 555,France,1980-01-02,yes,Cy\n"
    b"4,c@shop.example,,12 Privet Drive,1980-01-02,yes,Di\n"
    b"5,d@shop.example,,France,Jane's birthday,yes,Ed\n"
    b"6,e@shop.example,,France,1980-01-02,maybe Jane,Flo\n"
    b'7,f@shop.example,,France,1980-01-02,yes,"=HYPERLINK(""http://x"",""Secret Corp"")"\n'
    b"8,Ragged Person,g@shop.example\n"
)
TRANSACTIONS = (
    b"InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,Currency,CustomerID\n"
    b"1,10,1,2011-01-01,1.00,GBP,17850\n"
    b"2,10,+999 Secret,2011-01-01,1.00,GBP,17850\n"
    b"3,10,1,Kim Secretsdottir,1.00,GBP,17850\n"
    b"4,10,1,2011-01-01,Secret Corp,GBP,17850\n"
    b"5,10,1,2011-01-01,1.00,Jane Secret 555,17850\n"
)


def _everything_said_about(job: ImportJob, caplog: Any) -> str:
    """Every place the job's outcome is shown or stored in plaintext, as one text."""
    job.refresh_from_db()
    _, token = api_token_create(name=f"r-{job.pk}", scopes=["imports:read"], actor="test")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    detail = api.get(f"/api/v1/imports/{job.pk}/")
    listed = api.get(f"/api/v1/imports/{job.pk}/errors")
    report = api.get(f"/api/v1/imports/{job.pk}/errors.csv")
    assert detail.status_code == listed.status_code == report.status_code == 200
    audit = list(AuditEntry.objects.filter(object_id=str(job.pk)).values_list("details", flat=True))
    assert len(audit) >= 2  # created and finished at least
    return "\n".join(
        [
            detail.content.decode(),
            listed.content.decode(),
            b"".join(report.streaming_content).decode(),
            json.dumps(list(job.row_errors.values("row", "column", "code", "reason")), default=str),
            job.error_code,
            job.error_message,
            json.dumps(job.stats),
            json.dumps(job.quality, default=str),
            json.dumps(job.mapping),
            json.dumps(job.headers),
            *(json.dumps(d, default=str) for d in audit),
            *(r.getMessage() for r in caplog.records),
            *(str(r.args) for r in caplog.records),
        ]
    )


def test_bad_profile_cells_are_reported_by_row_and_column_without_their_values(caplog) -> None:
    caplog.set_level(logging.DEBUG)

    job = run_import(PROFILES)

    assert job.status == ImportStatus.COMPLETED
    assert job.encoding == "utf-8"
    assert_reconciles(job)
    assert (job.created, job.rejected) == (1, 7)
    assert list(job.row_errors.order_by("row").values_list("row", "column", "code")) == [
        (3, "email", "invalid_email"),
        (4, "phone", "invalid_phone"),
        (5, "country", "invalid_country"),
        (6, "birth_date", "invalid_date"),
        (7, "marketing_opt_in", "invalid_boolean"),
        (8, "first_name", "formula"),
        (9, "", "ragged_row"),
    ]
    assert all(job.row_errors.values_list("reason", flat=True))  # a reason for each
    said = _everything_said_about(job, caplog)
    for secret in SECRETS:
        assert secret not in said, secret


def test_bad_transaction_cells_are_reported_without_their_values(caplog) -> None:
    caplog.set_level(logging.DEBUG)

    job = run_import(TRANSACTIONS, kind="transactions", source="shop")

    assert_reconciles(job)
    assert list(job.row_errors.order_by("row").values_list("row", "column", "code")) == [
        (3, "Quantity", "invalid_number"),
        (4, "InvoiceDate", "invalid_date"),
        (5, "UnitPrice", "invalid_number"),
        (6, "Currency", "invalid_currency"),
    ]
    said = _everything_said_about(job, caplog)
    for secret in SECRETS:
        assert secret not in said, secret


def test_a_job_error_caused_by_a_personal_cell_does_not_quote_it(settings, caplog) -> None:
    settings.CDP_IMPORT_MAX_FIELD_BYTES = 2_000
    caplog.set_level(logging.DEBUG)
    body = "email,notes\na@shop.example,fine\nb@shop.example," + "Kim Secretsdottir " * 200

    job = run_import(body.encode())

    assert (job.status, job.error_code) == (ImportStatus.FAILED, "import_field_too_large")
    assert "row 3" in job.error_message and job.created == 1
    assert "Kim Secretsdottir" not in _everything_said_about(job, caplog)


def test_the_admin_progress_json_and_error_csv_hold_no_values(django_user_model) -> None:
    job = run_import(PROFILES)
    client = client_for(django_user_model, CONSENT_ADMIN)

    progress = client.get(f"/admin/ingest/importjob/{job.pk}/progress.json")
    report = client.get(f"/admin/ingest/importjob/{job.pk}/errors.csv")
    page = client.get(f"/admin/ingest/importjob/{job.pk}/progress/")

    assert progress.status_code == report.status_code == page.status_code == 200
    text = (
        progress.content.decode()
        + b"".join(report.streaming_content).decode()
        + page.content.decode()
    )
    assert "invalid_phone" in text
    for secret in SECRETS:
        assert secret not in text, secret


@pytest.mark.parametrize(
    "first_row",
    [
        "jane.doe@shop.example,Jane,Doe",
        "Jane,Doe,+44 20 7946 0958",
        "17850,jane.doe@shop.example,United Kingdom",
    ],
)
def test_a_file_without_a_header_row_fails_without_storing_its_first_row(first_row: str) -> None:
    """Without a header, the first row's values would become column names: stored in plaintext
    as the job's headers and mapping, shown in the admin and the API, and named in the error
    report's column field."""
    body = first_row + "\njohn.roe@shop.example,John,Roe\n"

    job = run_import(body.encode())

    assert (job.status, job.error_code) == (ImportStatus.FAILED, "import_no_header")
    stored = json.dumps([job.headers, job.mapping, job.error_message, job.quality])
    for value in first_row.split(","):
        assert value not in stored, value


def test_the_api_refuses_a_file_without_a_header_row_without_echoing_it() -> None:
    _, token = api_token_create(name="w", scopes=["imports:write"], actor="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    upload = io.BytesIO(b"jane.doe@shop.example,Jane\njohn@shop.example,John\n")
    upload.name = "people.csv"

    response = client.post(
        "/api/v1/imports/",
        {"file": upload, "source": "crm", "kind": "profiles"},
        format="multipart",
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "import_no_header"
    assert b"jane.doe" not in response.content and b"Jane" not in response.content
