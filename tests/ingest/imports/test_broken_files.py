"""Deliberately broken files: a clear job error or a per-row reason, and nothing accepted lost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cdp.ingest.imports.storage import job_file_path
from cdp.ingest.models import ImportStatus
from cdp.profiles.models import Customer
from tests.ingest.imports.helpers import assert_reconciles, run_import

pytestmark = pytest.mark.django_db

HEADER = "customer_id,email,first_name,country\n"


def rows(n: int, start: int = 0) -> str:
    return "".join(f"c{i},p{i}@shop.example,Name{i},France\n" for i in range(start, start + n))


def errors(job) -> list[tuple[int, str, str]]:
    return list(job.row_errors.order_by("row").values_list("row", "column", "code"))


def test_empty_file_fails_the_job_with_a_clear_error() -> None:
    job = run_import(b"")

    assert (job.status, job.error_code) == (ImportStatus.FAILED, "import_empty_file")
    assert job.rows_done == 0
    assert not job_file_path(job.pk).exists()  # deleted once processed


def test_header_only_file_completes_with_nothing_to_do() -> None:
    job = run_import(HEADER.encode())

    assert job.status == ImportStatus.COMPLETED
    assert (job.rows_done, job.created) == (0, 0)


def test_binary_file_fails_the_job() -> None:
    job = run_import(os.urandom(4096) + b"\x00" * 10 + b"\x89PNG\r\n")

    assert (job.status, job.error_code) == (ImportStatus.FAILED, "import_binary_file")


def test_ragged_rows_are_rejected_one_by_one() -> None:
    body = HEADER + rows(2) + "c9,x@shop.example\n" + rows(1, 2) + "c8,a@b.example,A,France,extra\n"

    job = run_import(body.encode())

    assert job.status == ImportStatus.COMPLETED
    assert_reconciles(job)
    assert (job.created, job.rejected) == (3, 2)
    assert errors(job) == [(4, "", "ragged_row"), (6, "", "ragged_row")]
    reasons = list(job.row_errors.values_list("reason", flat=True))
    assert reasons[0] == "has 2 fields where the header has 4"


def test_wrong_encoding_rejects_only_the_rows_with_invalid_bytes() -> None:
    # A UTF-8 file with one row, past the sniffed sample, pasted from a Latin-1 editor.
    good = (HEADER + rows(3000)).encode()
    bad = "c7,z@shop.example,Zoë,France\n".encode("latin-1")

    job = run_import(good + bad + rows(1, 3000).encode())

    assert job.encoding == "utf-8"
    assert_reconciles(job)
    assert (job.created, job.rejected) == (3001, 1)
    assert errors(job) == [(3002, "first_name", "encoding")]


def test_cp1252_file_with_semicolons_and_day_first_dates_is_read_correctly() -> None:
    body = "Kundennummer;E-Mail;Vorname;Land;DOB\r\n1;anna@shop.example;Zoë;Germany;04/09/1980\r\n"
    mapping = {
        "Kundennummer": "customer_id",
        "E-Mail": "email",
        "Vorname": "first_name",
        "Land": "country",
        "DOB": "birth_date",
    }

    job = run_import(body.encode("cp1252"), mapping=mapping, options={"day_first": True})

    assert (job.encoding, job.delimiter) == ("cp1252", ";")
    assert job.created == 1, list(job.row_errors.values_list("reason", flat=True))
    customer = Customer.objects.get()
    assert customer.first_name == "Zoë"
    assert customer.country == "DE"
    assert customer.birth_date.isoformat() == "1980-09-04"


def test_bom_and_tab_delimiter_are_detected() -> None:
    body = "\ufeffemail\tphone\tcountry\nA@Shop.Example\t020 7946 0018\tUK\n"

    job = run_import(body.encode("utf-8"), options={"default_region": "GB"})

    assert (job.encoding, job.delimiter) == ("utf-8-sig", "\t")
    assert job.mapping == {"email": "email", "phone": "phone", "country": "country"}
    customer = Customer.objects.get()
    assert (customer.email, customer.phone, customer.country) == (
        "a@shop.example",
        "+442079460018",
        "GB",
    )


def test_a_100_mb_single_field_fails_the_job_and_keeps_the_rows_before(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with path.open("w") as out:
        out.write(HEADER + rows(5))
        out.write('c99,big@shop.example,"')
        chunk = "x" * (1024 * 1024)
        for _ in range(100):
            out.write(chunk)
        out.write('",France\n')
        out.write(rows(2, 5))

    job = run_import(path)

    assert (job.status, job.error_code) == (ImportStatus.FAILED, "import_field_too_large")
    assert "row 7" in job.error_message
    assert job.created == job.rows_done == 5
    assert Customer.objects.count() == 5


def test_formula_injection_values_are_rejected_per_row() -> None:
    body = (
        HEADER
        + rows(1)
        + 'c5,f@shop.example,"=HYPERLINK(""http://evil.example"",""x"")",France\n'
        + "c6,g@shop.example,@SUM(A1:A9),France\n"
        + "c7,h@shop.example,+cmd|' /C calc'!A0,France\n"
        + "c8,i@shop.example,-Ann,France\n"
    )

    job = run_import(body.encode())

    assert_reconciles(job)
    assert (job.created, job.rejected) == (1, 4)
    assert errors(job) == [(r, "first_name", "formula") for r in (3, 4, 5, 6)]
    assert "HYPERLINK" not in str(list(job.row_errors.values_list("reason", flat=True)))


def test_bad_values_give_row_column_and_reason_without_the_value() -> None:
    body = (
        "customer_id,email,phone,country,birth_date\n"
        "1,not-an-email,,France,1980-01-02\n"
        "2,b@shop.example,12,France,1980-01-02\n"
        "3,c@shop.example,,Atlantis,1980-01-02\n"
        "4,d@shop.example,,France,31/31/1980\n"
        ",,,France,1980-01-02\n"
    )

    job = run_import(body.encode())

    assert_reconciles(job)
    assert errors(job) == [
        (2, "email", "invalid_email"),
        (3, "phone", "invalid_phone"),
        (4, "country", "invalid_country"),
        (5, "birth_date", "invalid_date"),
        (6, "", "no_identifier"),
    ]
    report = " ".join(job.row_errors.values_list("reason", flat=True))
    for value in ("not-an-email", "Atlantis", "31/31/1980"):
        assert value not in report
