"""Audit of issue #5: broken files beyond tests/ingest/imports/test_broken_files.py, formula
injection in every stored column, and "re-uploading the same file changes nothing" on a file
with everything (merges, consents, traits, duplicates, rejects) and on real data sets."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cdp.ingest.imports.chunks import import_chunks
from cdp.ingest.imports.reader import RowStream, sniff
from cdp.ingest.imports.storage import job_file_path
from cdp.ingest.models import Event, ImportStatus
from cdp.profiles.models import Customer, Identity, Merge, SourceRecord
from consent.models import ConsentEvent, ConsentState
from tests.ingest.imports.helpers import DATA, assert_reconciles, run_import
from tests.profiles.factories import make_customer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings: Any, tmp_path: Any) -> None:
    """This module's encrypted uploads go to a temporary directory, not the checkout's var/."""
    settings.CDP_IMPORT_DIR = str(tmp_path / "uploads")


PEOPLE = "customer_id,email,first_name,country\n" + "".join(
    f"c{i},p{i}@shop.example,Name{i},France\n" for i in range(3)
)


def errors(job) -> list[tuple[int, str, str]]:
    return list(job.row_errors.order_by("row", "column").values_list("row", "column", "code"))


# --- formula injection: every column whose text is stored -------------------------------------


def test_formula_injection_in_the_email_column_is_rejected_per_row() -> None:
    """An e-mail's local part may contain `=`, `(` and quotes: the normaliser accepted
    `=HYPERLINK("...")@x.example`, which a spreadsheet executes when the profile is exported."""
    body = (
        "email,first_name\n"
        "ok@shop.example,Ann\n"
        '"=HYPERLINK(""http://evil.example"")@x.example",Bob\n'
        "=1+2@x.example,Cid\n"
        "@SUM(A1)@x.example,Dan\n"
        "-2+3@x.example,Eve\n"
        "+cmd@x.example,Fay\n"
    )

    job = run_import(body.encode())

    assert_reconciles(job)
    assert (job.created, job.rejected) == (1, 5)
    assert errors(job) == [(r, "email", "formula") for r in (3, 4, 5, 6, 7)]
    assert [c.email for c in Customer.objects.all()] == ["ok@shop.example"]


def test_formula_injection_in_traits_attributes_ids_and_transactions_is_rejected() -> None:
    profiles = run_import(
        b"customer_id,email,plan,Notes\n"
        b"1,a@shop.example,gold,fine\n"
        b"=2+2,b@shop.example,gold,fine\n"
        b'3,c@shop.example,"=HYPERLINK(""http://x"")",fine\n'
        b"4,d@shop.example,gold,@cmd\n",
        options={"rules": ["customer_id", "email"]},
    )
    orders = run_import(
        b"InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID,Category\n"
        b"1,10,1,2011-01-01,1.00,17850,toys\n"
        b"=HYPERLINK(1),10,1,2011-01-01,1.00,17850,toys\n"
        b"2,=2+5,1,2011-01-01,1.00,17850,toys\n"
        b"3,10,1,2011-01-01,1.00,17850,+cmd|x\n",
        kind="transactions",
        source="shop",
    )

    assert profiles.mapping["plan"].startswith("attribute:")
    assert profiles.mapping["Notes"].startswith("trait:")
    assert errors(profiles) == [
        (3, "customer_id", "formula"),
        (4, "plan", "formula"),
        (5, "Notes", "formula"),
    ]
    assert errors(orders) == [
        (3, "InvoiceNo", "formula"),
        (4, "StockCode", "formula"),
        (5, "Category", "formula"),
    ]
    assert (profiles.created, orders.created) == (1, 1)
    assert_reconciles(profiles)
    assert_reconciles(orders)


def test_signed_numbers_are_not_mistaken_for_formulas() -> None:
    job = run_import(
        b"email,balance,phone\na@shop.example,-12.5,+44 20 7946 0018\n",
        options={"default_region": "GB"},
    )

    assert (job.created, job.rejected) == (1, 0), errors(job)
    customer = Customer.objects.get()
    assert customer.phone == "+442079460018"
    assert -12.5 in [*customer.attributes.values(), *(customer.traits or {}).values()]


# --- broken files --------------------------------------------------------------------------


def test_a_gzipped_csv_and_a_spreadsheet_are_refused_as_binary() -> None:
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:  # what an .xlsx is
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", "<worksheet/>" * 100)

    gz = run_import(gzip.compress(PEOPLE.encode()), name="people.csv.gz")
    xlsx = run_import(zipped.getvalue(), name="people.xlsx", source="other")

    for job in (gz, xlsx):
        assert (job.status, job.error_code) == (ImportStatus.FAILED, "import_binary_file")
        assert job.rows_done == 0 and job.error_message
        assert not job_file_path(job.pk).exists()
    assert Customer.objects.count() == 0


def test_utf16_is_read_with_a_bom_and_without_one_either_byte_order() -> None:
    text = PEOPLE.replace("Name1", "Zoë")

    with_bom = run_import(text.encode("utf-16"))
    without = run_import(text.encode("utf-16-le"), source="other")

    assert (with_bom.status, with_bom.encoding, with_bom.created) == ("completed", "utf-16", 3)
    assert "Zoë" in [c.first_name for c in Customer.objects.all()]
    big_endian = run_import(text.encode("utf-16-be"), source="third")
    for job, encoding in ((without, "utf-16-le"), (big_endian, "utf-16-be")):
        # The same three people from other sources: read, matched, nothing rejected.
        assert (job.status, job.encoding) == ("completed", encoding)
        assert (job.rows_done, job.created, job.rejected) == (3, 0, 0)
    assert [c.first_name for c in Customer.objects.all()].count("Zoë") == 1


def test_a_latin1_file_keeps_its_accents_in_headers_and_values() -> None:
    # No BOM, not UTF-8: decoded as CP1252 (a superset of Latin-1 for letters), not mangled.
    body = "Prénom;E-mail\nZoë;z@shop.example\n".encode("latin-1")

    job = run_import(body)

    assert (job.status, job.delimiter) == (ImportStatus.COMPLETED, ";")
    assert job.headers == ["Prénom", "E-mail"]
    assert Customer.objects.get().email == "z@shop.example"


def test_a_100_mb_field_spread_over_short_lines_fails_the_job_and_keeps_earlier_rows(
    tmp_path: Path,
) -> None:
    """The other 100 MB shape: a quoted field of many short lines (no single long line), so the
    CSV reader's field limit, not the line bound, must stop it. The upload is deleted after."""
    path = tmp_path / "huge.csv"
    line = "x" * 1_000 + "\n"
    with path.open("w") as out:
        out.write(PEOPLE)
        out.write('c99,big@shop.example,"')
        block = line * 1_024
        for _ in range(100):
            out.write(block)
        out.write('",France\n')
        out.write("c100,after@shop.example,After,France\n")

    job = run_import(path)

    assert job.status == ImportStatus.FAILED
    assert job.error_code == "import_field_too_large"  # as for a field on one long line
    assert "row 5" in job.error_message and "limit" in job.error_message
    assert "x" * 20 not in job.error_message and job.file_bytes > 100_000_000
    assert (job.rows_done, job.created) == (3, 3)
    assert Customer.objects.count() == 3
    assert job.file_deleted_at is not None and not job_file_path(job.pk).exists()


def test_row_numbers_in_the_error_report_count_blank_lines_as_a_spreadsheet_does() -> None:
    body = b"email,first_name\na@shop.example,Ann\n\nnot-an-email,Bob\n"

    job = run_import(body)

    assert errors(job) == [(4, "email", "invalid_email")]
    assert SourceRecord.objects.get().row_number == 2


def test_a_resumed_run_skips_data_rows_not_numbers_when_the_file_has_blank_rows() -> None:
    """Rows done counts data rows; the numbers count blank rows too: resuming after two data
    rows starts at the third data row, wherever blank rows put its number."""
    body = b"email\na@shop.example\n\n\nb@shop.example\n\nc@shop.example\nd@shop.example\n"
    stream = RowStream(io.BytesIO(body), sniff(body))

    reader = SimpleNamespace(position=0)  # only its byte position is read
    chunks = list(
        import_chunks(stream, reader, rows_done=2, size=10, clean=lambda raw, ctx: raw, ctx=None)
    )

    assert [(r.number, r.ordinal, r.values) for r in chunks[0].rows] == [
        (7, 3, ["c@shop.example"]),
        (8, 4, ["d@shop.example"]),
    ]


# --- re-upload changes nothing ---------------------------------------------------------------


def _snapshot() -> dict[str, Any]:
    customers = [
        (
            c.id,
            c.status,
            c.updated_at,
            c.merged_into_id,
            c.email,
            c.phone,
            c.first_name,
            c.last_name,
            c.country,
            c.birth_date,
            c.traits,
            c.attributes,
        )
        for c in Customer.objects.order_by("id")
    ]
    return {
        "customers": customers,
        "identities": list(
            Identity.objects.order_by("id").values_list("id", "customer_id", "kind", "namespace")
        ),
        "records": list(SourceRecord.objects.order_by("id").values_list("id", flat=True)),
        "merges": list(Merge.objects.order_by("id").values_list("id", flat=True)),
        "consent_events": list(ConsentEvent.objects.order_by("seq").values_list("seq", flat=True)),
        "consent_states": list(
            ConsentState.objects.order_by("pk").values_list("pk", "granted", "since", "event_seq")
        ),
        "events": list(Event.objects.order_by("id").values_list("id", flat=True)),
    }


def test_reuploading_a_file_with_merges_consents_traits_and_rejects_changes_nothing() -> None:
    make_customer(email="eve@shop.example")
    make_customer(phone="+442079460999")
    body = (
        "customer_id,email,phone,first_name,last_name,country,birth_date,plan,Income,"
        "marketing_opt_in,marketing_opt_in_date\n"
        "1,ann@shop.example,+442079460001,Ann,Lee,UK,04/09/1980,gold,52000,yes,01/03/2024\n"
        "2,eve@shop.example,+442079460999,Eve,Moss,France,12/12/1971,silver,61000,no,02/03/2024\n"
        "1,ann@shop.example,+442079460001,Anna,Lee,UK,04/09/1980,gold,52000,yes,01/03/2024\n"
        "1,ANN@shop.example,+442079460001,Anna,Lee,UK,04/09/1980,gold,52000,yes,01/03/2024\n"
        "3,not-an-email,,Bad,Row,France,,,,,\n"
        "4,dan@shop.example,,Dan,,Atlantis,,,,,\n"
        "5,fay@shop.example,,Fay,Ray,DE,,bronze,,,\n"
    )
    options = {"day_first": True, "default_region": "GB"}

    first = run_import(body.encode(), options=options)
    before = _snapshot()
    again = run_import(body.encode(), options=options, name="same-again.csv")

    assert first.status == again.status == ImportStatus.COMPLETED
    assert_reconciles(first)
    assert_reconciles(again)
    assert first.stats.get("merges") == 1 and first.stats.get("consents_recorded") == 3
    assert (first.created, first.updated, first.duplicates, first.rejected) == (2, 2, 1, 2)
    assert errors(first) == [(6, "email", "invalid_email"), (7, "country", "invalid_country")]
    assert (again.created, again.updated, again.rejected) == (0, 0, 2)
    assert again.duplicates == again.rows_done - again.rejected == 5
    assert not again.stats.get("merges") and not again.stats.get("consents_recorded")
    assert _snapshot() == before
    assert errors(again) == errors(first)


def test_reuploading_the_real_ifood_and_mall_files_changes_nothing() -> None:
    ifood = DATA / "customer_personality_ifood" / "marketing_campaign.csv"
    mall = DATA / "mall_customers" / "Mall_Customers.csv"
    ifood_options = {"day_first": True, "rules": ["customer_id", "content"]}
    firsts = [
        run_import(ifood, source="ifood", options=ifood_options),
        run_import(mall, source="mall"),
    ]
    before = _snapshot()

    agains = [
        run_import(ifood, source="ifood", options=ifood_options),
        run_import(mall, source="mall"),
    ]

    assert [j.rows_done for j in firsts] == [j.rows_done for j in agains] == [2240, 200]
    for job in agains:
        assert_reconciles(job)
        assert (job.created, job.updated, job.rejected) == (0, 0, 0)
        assert job.duplicates == job.rows_done
    assert _snapshot() == before


def test_amounts_with_currency_signs_codes_separators_and_parentheses() -> None:
    body = (
        "order,qty,date,total\n"
        '1,1,2024-01-01,"£1,234.50"\n'
        "2,1,2024-01-01,EUR 12.50\n"
        '3,1,2024-01-01,"12,50 €"\n'
        "4,1,2024-01-01,(3.00)\n"
        "5,1,2024-01-01,$ 7\n"
        "6,1,2024-01-01,twelve\n"
    )
    mapping = {"order": "invoice", "qty": "quantity", "date": "date", "total": "amount"}

    job = run_import(
        body.encode(),
        kind="transactions",
        source="shop",
        mapping=mapping,
        options={"currency": "CHF"},
    )

    assert_reconciles(job)
    assert errors(job) == [(7, "total", "invalid_number")]
    by_order = {e.properties["order_id"]: (e.amount, e.currency) for e in Event.objects.all()}
    assert {k: (str(a), c) for k, (a, c) in by_order.items()} == {
        "1": ("1234.5000", "GBP"),
        "2": ("12.5000", "EUR"),
        "3": ("12.5000", "EUR"),
        "4": ("-3.0000", "CHF"),
        "5": ("7.0000", "USD"),
    }
