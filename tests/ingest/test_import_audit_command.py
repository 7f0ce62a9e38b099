"""Audit of issue #5: `manage.py import_csv` (options, mapping, progress bar, errors), and the
mapping and options a source saved, reused by the command line and the API."""

from __future__ import annotations

import io
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from cdp.api.services import api_token_create
from cdp.ingest.imports.services import (
    column_mapping_save,
    import_job_run,
    import_source_get_or_create,
)
from cdp.ingest.models import Event, ImportJob, ImportKind, ImportStatus
from cdp.profiles.models import Customer
from tests.ingest.imports.helpers import assert_reconciles, pace_chunks


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings: Any, tmp_path: Any) -> None:
    """This module's encrypted uploads go to a temporary directory, not the checkout's var/."""
    settings.CDP_IMPORT_DIR = str(tmp_path / "uploads")


TRANSACTIONS = (
    "Facture;Article;Qté;Date;Prix;Client\n"
    "536365;85123A;6;01/12/2010 08:26;2,55;17850\n"
    "C536379;D;-1;01/12/2010 09:41;27,50;14527\n"
    "536380;22961;2;02/12/2010 10:00;1,00;\n"
)
TRANSACTION_MAPPING = {
    "Facture": "invoice",
    "Article": "product_id",
    "Qté": "quantity",
    "Date": "date",
    "Prix": "price",
    "Client": "customer_id",
}


def run_command(*args: str) -> tuple[dict[str, Any], str]:
    """The command's JSON summary (stdout) and what it wrote for people (stderr)."""
    out, err = io.StringIO(), io.StringIO()
    call_command("import_csv", *args, stdout=out, stderr=err)
    return json.loads(out.getvalue().strip().splitlines()[-1]), err.getvalue()


@pytest.mark.django_db
def test_command_imports_with_region_day_first_and_prints_reconciling_counts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "people.csv"
    path.write_text(
        "customer_id,email,phone,birth_date\n"
        "1,Ann@Shop.Example,020 7946 0018,04/09/1980\n"
        "2,bob@shop.example,020 7946 0019,31/12/1975\n"
        "3,not-an-email,,01/01/1990\n"
    )

    summary, err = run_command(
        str(path),
        "--source",
        "crm",
        "--kind",
        "profiles",
        "--default-region",
        "GB",
        "--day-first",
        "--no-progress",
    )

    job = ImportJob.objects.get(pk=summary["job"])
    assert summary["status"] == "completed"
    assert (summary["rows_read"], summary["created"], summary["rejected"]) == (3, 2, 1)
    assert summary["rows_read"] == sum(
        summary[k] for k in ("created", "updated", "duplicates", "rejected")
    )
    assert_reconciles(job)
    assert job.source.name == "crm" and job.created_by == "command:import_csv"
    by_email = {c.email: c for c in Customer.objects.all()}
    ann = by_email["ann@shop.example"]
    assert (ann.phone, ann.birth_date.isoformat()) == ("+442079460018", "1980-09-04")
    assert str(job.pk) in err and "rows/s" not in err  # --no-progress: no bar


@pytest.mark.django_db
def test_command_mapping_from_a_file_and_currency_for_transactions(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(TRANSACTIONS, encoding="cp1252")
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(TRANSACTION_MAPPING))

    summary, _ = run_command(
        str(path),
        "--source=shop",
        "--kind=transactions",
        f"--mapping={mapping}",
        "--currency=gbp",
        "--day-first",
        "--no-progress",
    )

    assert (summary["status"], summary["created"], summary["rejected"]) == ("completed", 3, 0)
    events = Event.objects.order_by("timestamp")
    assert [(e.name, e.currency, e.amount) for e in events] == [
        ("Order Completed", "GBP", Decimal("15.3000")),
        ("Order Refunded", "GBP", Decimal("-27.5000")),
        ("Order Completed", "GBP", Decimal("2.0000")),
    ]
    assert events[2].timestamp.isoformat() == "2010-12-02T10:00:00+00:00"  # day first
    assert summary["anonymous_lines"] == 1 and summary["refund_lines"] == 1


@pytest.mark.django_db
def test_command_mapping_as_inline_json_and_rules(tmp_path: Path) -> None:
    path = tmp_path / "twins.csv"
    path.write_text("Kunde,Plan,Stadt\n1,gold,Paris\n2,gold,Paris\n3,silver,Lyon\n")

    summary, err = run_command(
        str(path),
        "--source",
        "loyalty",
        "--kind",
        "profiles",
        "--mapping",
        '{"Kunde": "customer_id", "Plan": "attribute:plan", "Stadt": "trait:city"}',
        "--rules",
        "customer_id,content",
        "--no-progress",
    )

    job = ImportJob.objects.get(pk=summary["job"])
    assert job.options["rules"] == ["customer_id", "content"]
    assert job.mapping["Stadt"] == "trait:city"
    assert (summary["created"], summary["duplicates"]) == (2, 1)  # the enrolled-twice rule
    assert Customer.objects.count() == 2
    assert '"Kunde": "customer_id"' in err  # the mapping used is printed


@pytest.mark.django_db
def test_command_async_queues_the_job_without_running_it(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("email\na@shop.example\n")
    out = io.StringIO()

    call_command(
        "import_csv", str(path), "--source", "crm", "--kind", "profiles", "--async", stdout=out
    )

    job = ImportJob.objects.get()
    assert out.getvalue().strip() == f"Queued import job {job.pk}"
    assert (job.status, job.rows_done, Customer.objects.count()) == (ImportStatus.QUEUED, 0, 0)
    assert import_job_run(job_id=job.pk) == ImportStatus.COMPLETED  # what the worker does
    assert Customer.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        (b"", [], "import_empty_file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 50, [], "import_binary_file"),
        (b"email\na@shop.example\n", ["--mapping", "{nope"], "--mapping is not JSON"),
        (b"email\na@shop.example\n", ["--mapping", '{"email": "shoe_size"}'], "email"),
        (b"email\na@shop.example\n", ["--default-region", "GBR"], "default_region"),
        (b"Col A,Col B\n1,2\n", ["--kind", "transactions"], "missing required fields"),
    ],
)
def test_command_errors_are_clear_and_name_no_value(
    tmp_path: Path, content: bytes, extra: list[str], message: str
) -> None:
    path = tmp_path / "file.csv"
    path.write_bytes(content)
    kind = [] if "--kind" in extra else ["--kind", "profiles"]

    with pytest.raises(CommandError) as raised:
        call_command("import_csv", str(path), "--source", "crm", *kind, *extra, "--no-progress")

    assert message in str(raised.value)
    assert "a@shop.example" not in str(raised.value)
    assert Customer.objects.count() == 0


@pytest.mark.django_db
def test_command_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="is not a file"):
        call_command("import_csv", str(tmp_path / "nope.csv"), "--source", "crm", "--kind=profiles")
    assert ImportJob.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_command_progress_bar_shows_rows_rate_and_time_left_while_it_runs(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The bar is drawn from the job row by another thread every half second: chunks are paced
    here (12 x 0.25 s) so it must show intermediate states, not only the end."""
    settings.CDP_IMPORT_CHUNK_ROWS = 100
    pace_chunks(monkeypatch, 0.25)
    path = tmp_path / "people.csv"
    path.write_text("email\n" + "".join(f"p{i}@shop.example\n" for i in range(1_200)))
    out = io.StringIO()

    call_command("import_csv", str(path), "--source", "crm", "--kind", "profiles", stdout=out)

    frames = capsys.readouterr().err.split("\r")
    bars = [
        re.search(r"\[[#.]{30}\]\s+([\d.]+)% ([\d,]+) rows, ([\d,]+) rows/s(, \d+s left)?", f)
        for f in frames
    ]
    bars = [b for b in bars if b]
    assert bars, frames
    percents = [float(b.group(1)) for b in bars]
    assert percents[-1] == 100.0 and bars[-1].group(2) == "1,200"
    assert any(0 < p < 100 for p in percents), percents  # drawn while running
    assert any(b.group(4) for b in bars if 0 < float(b.group(1)) < 100)  # time left shown
    assert int(bars[-1].group(3).replace(",", "")) > 0
    assert percents == sorted(percents)
    assert json.loads(out.getvalue())["created"] == 1_200


SAVED_OPTIONS = {"default_region": "GB", "day_first": True, "currency": "", "rules": ["email"]}
PEOPLE = b"E-mail,Tel,Born\nann@shop.example,020 7946 0018,04/09/1980\n"


def _save_for_source() -> None:
    source = import_source_get_or_create(name="crm", actor="test")
    column_mapping_save(
        source=source,
        kind=ImportKind.PROFILES,
        mapping={"E-mail": "email", "Tel": "phone", "Born": "birth_date"},
        options=SAVED_OPTIONS,
        actor="test",
    )


def _assert_saved_options_applied(job: ImportJob) -> None:
    assert job.mapping == {"E-mail": "email", "Tel": "phone", "Born": "birth_date"}
    assert (job.options["default_region"], job.options["day_first"]) == ("GB", True)
    assert job.status == ImportStatus.COMPLETED and job.rejected == 0
    customer = Customer.objects.get()
    assert (customer.phone, customer.birth_date.isoformat()) == ("+442079460018", "1980-09-04")


@pytest.mark.django_db
def test_the_command_reuses_the_mapping_and_options_saved_for_the_source(tmp_path: Path) -> None:
    """README: "the mapping (and options) can be saved per source and is reused for the next
    file with the same headers"; the default phone region is per source (issue #5)."""
    _save_for_source()
    path = tmp_path / "people.csv"
    path.write_bytes(PEOPLE)

    summary, _ = run_command(str(path), "--source", "crm", "--kind", "profiles", "--no-progress")

    _assert_saved_options_applied(ImportJob.objects.get(pk=summary["job"]))


@pytest.mark.django_db
def test_an_option_given_on_the_command_line_overrides_the_saved_one(tmp_path: Path) -> None:
    _save_for_source()
    path = tmp_path / "people.csv"
    path.write_bytes(PEOPLE.replace(b"020 7946 0018", b"(415) 555-0132"))

    summary, _ = run_command(
        str(path), "--source", "crm", "--kind", "profiles", "--default-region=US", "--no-progress"
    )

    job = ImportJob.objects.get(pk=summary["job"])
    assert job.options["default_region"] == "US" and job.options["day_first"] is True
    assert Customer.objects.get().phone == "+14155550132"


@pytest.mark.django_db
def test_the_api_reuses_the_mapping_and_options_saved_for_the_source() -> None:
    _save_for_source()
    _, token = api_token_create(name="partner", scopes=["imports:write"], actor="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    upload = io.BytesIO(PEOPLE)
    upload.name = "people.csv"

    response = client.post(
        "/api/v1/imports/",
        {"file": upload, "source": "crm", "kind": "profiles"},
        format="multipart",
    )

    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    import_job_run(job_id=job_id)
    _assert_saved_options_applied(ImportJob.objects.get(pk=job_id))
