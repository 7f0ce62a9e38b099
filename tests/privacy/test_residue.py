"""The targeted residue scan and the deferred residue sweep.

An erasure verifies at once what indexes answer and what small tables hold; the columns only a
full read of a large table could search are left to the sweep, which reads each table once for
every erasure since the last sweep, fails the requests whose subject it finds and signs its
result without touching the certificates' signed content.
"""

from __future__ import annotations

import json
import uuid
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from cdp.audit.models import AuditEntry
from cdp.privacy.erasure import certificate_verify
from cdp.privacy.models import DataSubjectRequest, ErasureCertificate, ErasureJournal, ResidueSweep
from cdp.privacy.subjects import residue_scan, scan_catalog
from cdp.privacy.sweep import residue_sweep_run, sweep_verify
from cdp.profiles.roles import COMPLIANCE_OFFICER
from tests.roles import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def large_tables(settings: Any) -> None:
    """Every table with a page of data counts as large: probes and the sweep, no full reads."""
    settings.CDP_RESIDUE_SCAN_FULL_MAX_ROWS = 0


@pytest.fixture
def small_tables(settings: Any) -> None:
    """Every table counts as small and is read in full at once: what a test database's table
    sizes would otherwise decide (dead rows of earlier tests make tables look large)."""
    settings.CDP_RESIDUE_SCAN_FULL_MAX_ROWS = 10**9


def _table(sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)


def test_catalogue_knows_indexed_columns_and_sizes() -> None:
    _table("CREATE TABLE privacy_test_cat (subject uuid, note text, blob bytea)")
    _table("CREATE INDEX ON privacy_test_cat (subject)")
    _table(
        "INSERT INTO privacy_test_cat SELECT gen_random_uuid(), 'n', NULL "
        "FROM generate_series(1, 3000)"
    )
    table = {t.name: t for t in scan_catalog()}["privacy_test_cat"]
    kinds = {c.name: (c.kind, c.indexed) for c in table.columns}
    assert kinds == {
        "subject": ("uuid", True),
        "note": ("text", False),
        "blob": ("bytea", False),
    }
    assert 1_000 < table.rows < 10_000  # estimated from the size (never analysed)


def test_probe_finds_residue_in_an_indexed_column_of_a_large_table(
    large_tables: None, subject: Any, verified: Any, run: Any
) -> None:
    customer = subject(email="probed@example.com")
    _table("CREATE TABLE privacy_test_probe (subject uuid, note text)")
    _table("CREATE INDEX ON privacy_test_probe (subject)")
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO privacy_test_probe VALUES (%s, 'x')", [customer.pk])

    request = run(verified("erasure", "probed@example.com"))

    assert request.status == "failed"
    cert = ErasureCertificate.objects.get(request=request)
    assert cert.scan["residue"] == [{"table": "privacy_test_probe", "column": "subject", "rows": 1}]
    assert cert.scan["method"] == "targeted"
    assert cert.scan["columns_probed"] > 0
    deferred = {d["table"]: d["columns"] for d in cert.scan["deferred"]}
    assert deferred["privacy_test_probe"] == ["note"]  # text: the sweep's
    assert cert.sweep_due is True
    assert certificate_verify(cert)


def test_small_table_text_is_searched_at_once(
    small_tables: None, subject: Any, verified: Any, run: Any
) -> None:
    customer = subject(email="small@example.com")
    _table("CREATE TABLE privacy_test_small (note text)")
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO privacy_test_small VALUES (%s)", [f"id={customer.pk.hex}"])

    request = run(verified("erasure", "small@example.com"))

    assert request.status == "failed"
    cert = ErasureCertificate.objects.get(request=request)
    assert cert.scan["residue"] == [{"table": "privacy_test_small", "column": "note", "rows": 1}]
    assert cert.scan["deferred"] == [] and cert.sweep_due is False


def test_the_full_scan_still_reads_everything(subject: Any) -> None:
    customer = subject(email="full@example.com")
    _table("CREATE TABLE privacy_test_full (doc jsonb)")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO privacy_test_full VALUES (%s)", [json.dumps({"c": str(customer.pk)})]
        )
    targeted = residue_scan([customer.pk], [], full_read_max_rows=0, tables=["privacy_test_full"])
    assert targeted.residue == [] and targeted.deferred[0]["columns"] == ["doc"]
    full = residue_scan([customer.pk], [], tables=["privacy_test_full"])
    assert full.residue == [{"table": "privacy_test_full", "column": "doc", "rows": 1}]


def test_sweep_covers_several_erasures_in_one_pass_and_fails_those_with_residue(
    large_tables: None, subject: Any, verified: Any, run: Any, django_user_model: Any
) -> None:
    leaked = subject(email="leaked@example.com")
    subject(email="clean@example.com")
    indexed = subject(email="indexed@example.com")
    _table("CREATE TABLE privacy_test_big (doc jsonb, blob bytea)")
    with connection.cursor() as cursor:
        cursor.execute(  # dashless and upper case, inside a longer run of hex digits
            "INSERT INTO privacy_test_big SELECT jsonb_build_object('n', g), NULL "
            "FROM generate_series(1, 2000) AS g"
        )
        cursor.execute(
            "INSERT INTO privacy_test_big VALUES (%s, NULL), (%s, NULL)",
            [
                json.dumps({"copied": {"customer": str(leaked.pk)}}),
                json.dumps({"ref": "ab" + leaked.pk.hex.upper()}),
            ],
        )
    email_index = bytes(indexed.email_index)
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO privacy_test_big VALUES ('{}', %s)", [email_index])

    requests = [
        run(verified("erasure", f"{n}@example.com")) for n in ("leaked", "clean", "indexed")
    ]

    # At once, nothing is found: the JSON and the unindexed bytea column are the sweep's.
    assert [r.status for r in requests] == ["completed"] * 3
    assert all(r.report["sweep"] == "pending" for r in requests)
    certs = {c.request_id: c for c in ErasureCertificate.objects.all()}
    assert all(c.sweep_due and c.sweep_id is None for c in certs.values())
    deferred = {d["table"]: d["columns"] for d in certs[requests[0].id].scan["deferred"]}
    assert deferred["privacy_test_big"] == ["doc", "blob"]

    sweep = residue_sweep_run(actor="test")

    assert sweep is not None and sweep.clean is False
    assert sorted(sweep.covered) == sorted(str(r.id) for r in requests)
    residue = {(r["table"], r["column"]): r for r in sweep.residue}
    assert set(residue) == {("privacy_test_big", "doc"), ("privacy_test_big", "blob")}
    assert residue[("privacy_test_big", "doc")]["rows"] == 2
    assert residue[("privacy_test_big", "doc")]["requests"] == [str(requests[0].id)]
    assert residue[("privacy_test_big", "blob")]["requests"] == [str(requests[2].id)]
    assert {e["table"] for e in sweep.exceptions} >= {"consent_consentevent"}
    assert sweep_verify(sweep)
    assert str(leaked.pk) not in json.dumps(sweep.residue)  # request ids only, never a subject

    status = dict(DataSubjectRequest.objects.values_list("id", "status"))
    assert [status[r.id] for r in requests] == ["failed", "completed", "failed"]
    reports = {r.id: r.report for r in DataSubjectRequest.objects.filter(type="erasure")}
    assert reports[requests[1].id]["sweep"] == str(sweep.id)
    assert reports[requests[1].id]["sweep_clean"] is True
    assert reports[requests[0].id]["sweep_clean"] is False
    for cert in ErasureCertificate.objects.all():
        assert cert.sweep_id == sweep.id
        assert certificate_verify(cert)  # linked outside the signed content
    assert AuditEntry.objects.filter(action="privacy.residue_sweep").count() == 1
    assert set(
        AuditEntry.objects.filter(action="privacy.erasure_residue").values_list(
            "object_id", flat=True
        )
    ) == {str(requests[0].id), str(requests[2].id)}

    # Tampering shows; a second run has nothing left to cover.
    ResidueSweep.objects.filter(pk=sweep.pk).update(clean=True)
    sweep.refresh_from_db()
    assert not sweep_verify(sweep)
    assert residue_sweep_run(actor="test") is None

    # The officer sees what was left to the sweep and its outcome.
    officer = client_for(django_user_model, COMPLIANCE_OFFICER)
    page = officer.get(
        reverse("admin:privacy_datasubjectrequest_change", args=[requests[0].id])
    ).content.decode()
    assert "left to the residue sweep" in page and "privacy_test_big (doc, blob)" in page
    assert reverse("admin:privacy_residuesweep_change", args=[sweep.id]) in page
    assert officer.get(reverse("admin:privacy_residuesweep_changelist")).status_code == 200


def test_sweep_searches_the_journalled_identifiers(
    large_tables: None, subject: Any, verified: Any, run: Any
) -> None:
    customer = subject(email="journal@example.com")
    request = run(verified("erasure", "journal@example.com"))
    journal = ErasureJournal.objects.get(request=request)
    assert {k for k, _ in journal.identifiers} == {"email", "phone"}
    _table("CREATE TABLE privacy_test_late (note varchar(200))")
    with connection.cursor() as cursor:  # a copy appearing after the erasure is residue too
        cursor.execute(
            "INSERT INTO privacy_test_late SELECT 'filler ' || g FROM generate_series(1, 500) g"
        )
        cursor.execute("INSERT INTO privacy_test_late VALUES (%s)", [f"<{customer.pk}>"])
    out = StringIO()
    call_command("residue_sweep", stdout=out)
    assert "1 erasures" in out.getvalue() and "RESIDUE" in out.getvalue()
    request.refresh_from_db()
    assert request.status == "failed"
    out = StringIO()
    call_command("residue_sweep", stdout=out)
    assert "nothing to sweep" in out.getvalue()


def test_an_erasure_with_nothing_deferred_is_not_swept(
    small_tables: None, subject: Any, verified: Any, run: Any
) -> None:
    subject(email="tiny@example.com")
    request = run(verified("erasure", "tiny@example.com"))
    cert = ErasureCertificate.objects.get(request=request)
    assert cert.sweep_due is False and "sweep" not in request.report
    assert residue_sweep_run() is None


def test_a_stale_catalogue_is_read_again(subject: Any) -> None:
    customer = subject(email="stale@example.com")
    _table("CREATE TABLE privacy_test_stale (note text)")
    assert residue_scan([customer.pk], [], tables=["privacy_test_stale"]).tables == 1
    _table("ALTER TABLE privacy_test_stale RENAME COLUMN note TO remark")
    _table(f"INSERT INTO privacy_test_stale VALUES ('{uuid.UUID(str(customer.pk))}')")
    result = residue_scan([customer.pk], [], tables=["privacy_test_stale"])
    assert result.residue == [{"table": "privacy_test_stale", "column": "remark", "rows": 1}]


def test_the_scan_gives_back_the_planner_settings_it_turned_off(subject: Any) -> None:
    """The probes run with sequential reads, parallel plans and JIT off; the caller's
    transaction (an erasure's, with its audit and certificate still to come) gets its own
    settings back, whatever they were."""
    customer = subject(email="planner@example.com")
    _table("CREATE TABLE privacy_test_planner (subject uuid)")
    _table("CREATE INDEX ON privacy_test_planner (subject)")
    _table(
        "INSERT INTO privacy_test_planner SELECT gen_random_uuid() FROM generate_series(1, 3000)"
    )
    _table("SET LOCAL max_parallel_workers_per_gather = 3")
    _table("SET LOCAL jit = on")

    result = residue_scan([customer.pk], [], tables=["privacy_test_planner"], full_read_max_rows=0)

    assert result.probed == 1 and result.residue == []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('enable_seqscan'), "
            "current_setting('max_parallel_workers_per_gather'), current_setting('jit')"
        )
        assert cursor.fetchone() == ("on", "3", "on")
