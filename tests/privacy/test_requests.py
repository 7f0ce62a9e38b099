"""Request lifecycle: creation by blind index, verification (codes hashed, constant-time
compare), extension, rejection, and the executors of rectification, restriction, objection and
opt-out."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from cdp.audit.models import AuditEntry
from cdp.privacy.deadlines import add_months
from cdp.privacy.errors import RequestStateError, SubjectInvalid
from cdp.privacy.models import DataSubjectRequest, Verification
from cdp.privacy.services import (
    dsr_code_check,
    dsr_code_issue,
    dsr_create,
    dsr_extend,
    dsr_reject,
    dsr_run,
    dsr_verify,
    sealed_change_open,
)
from cdp.profiles.models import Customer
from tests.profiles.factories import make_customer

pytestmark = pytest.mark.django_db


def _table_bytes(table: str) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT row_to_json(t)::text FROM {table} t")
        return "\n".join(r[0] for r in cursor.fetchall()).encode()


def test_request_stores_the_identifier_only_as_a_blind_index() -> None:
    customer = make_customer(email="Jane.Roe@Example.com", country="GB")
    request = dsr_create(
        type="access", subject_kind="email", subject_value="jane.roe@example.com", actor="user:1"
    )
    assert request.customer_id == customer.id
    assert request.subject_found is True
    assert request.regime == "gdpr"
    assert request.status == "received"
    assert bytes(request.subject_index) == bytes(customer.email_index)
    assert b"jane.roe" not in _table_bytes("privacy_datasubjectrequest").lower()
    entry = AuditEntry.objects.get(action="privacy.request_create")
    assert entry.object_id == str(request.id)
    assert entry.details["subject_found"] is True


def test_regime_follows_the_subjects_jurisdiction() -> None:
    customer = make_customer(country="US")
    request = dsr_create(
        type="erasure", subject_kind="customer_id", subject_value=str(customer.id), actor="user:1"
    )
    assert request.regime == "ccpa"
    assert request.ack_due_at is not None


def test_unknown_subject_is_accepted_and_marked_not_found() -> None:
    request = dsr_create(
        type="access", subject_kind="email", subject_value="nobody@example.org", actor="user:1"
    )
    assert request.customer_id is None
    assert request.subject_found is False


def test_malformed_identifier_is_refused_without_echoing_it() -> None:
    with pytest.raises(SubjectInvalid) as caught:
        dsr_create(type="access", subject_kind="email", subject_value="not-an-email", actor="x")
    assert "not-an-email" not in caught.value.message
    assert not DataSubjectRequest.objects.exists()


def test_nothing_runs_before_verification_except_opt_outs() -> None:
    customer = make_customer()
    request = dsr_create(
        type="erasure", subject_kind="customer_id", subject_value=str(customer.id), actor="x"
    )
    with pytest.raises(RequestStateError):
        dsr_run(request=request, actor="x")
    opt_out = dsr_create(
        type="opt_out_sale", subject_kind="customer_id", subject_value=str(customer.id), actor="x"
    )
    dsr_run(request=opt_out, actor="x")  # no error: opt-outs need no verification


def test_verification_keeps_method_and_encrypted_evidence() -> None:
    customer = make_customer()
    request = dsr_create(
        type="access", subject_kind="customer_id", subject_value=str(customer.id), actor="x"
    )
    dsr_verify(request=request, method="document", actor="user:7", evidence_note="Passport P123")
    request.refresh_from_db()
    assert request.status == "verified"
    verification = Verification.objects.get(request=request)
    assert verification.evidence_note == "Passport P123"
    assert b"P123" not in _table_bytes("privacy_verification")
    with pytest.raises(RequestStateError):
        dsr_verify(request=request, method="document", actor="user:7")


def test_one_time_code_is_hashed_and_checked() -> None:
    customer = make_customer()
    request = dsr_create(
        type="access", subject_kind="customer_id", subject_value=str(customer.id), actor="x"
    )
    verification, code = dsr_code_issue(request=request, method="email_code", actor="x")
    assert len(code) == 8
    assert code.encode() not in _table_bytes("privacy_verification")
    assert bytes(verification.code_hash) != code.encode()
    wrong = "00000000" if code != "00000000" else "11111111"
    assert dsr_code_check(request=request, code=wrong, actor="x") is False
    request.refresh_from_db()
    assert request.status == "received"
    assert dsr_code_check(request=request, code=code, actor="x") is True
    request.refresh_from_db()
    assert request.status == "verified"
    checks = AuditEntry.objects.filter(action="privacy.verification_code_check")
    assert [e.details["matched"] for e in checks.order_by("seq")] == [False, True]


def test_code_attempts_are_limited() -> None:
    customer = make_customer()
    request = dsr_create(
        type="access", subject_kind="customer_id", subject_value=str(customer.id), actor="x"
    )
    _, code = dsr_code_issue(request=request, method="sms_code", actor="x")
    wrong = "00000000" if code != "00000000" else "11111111"
    for _ in range(5):
        assert dsr_code_check(request=request, code=wrong, actor="x") is False
    assert dsr_code_check(request=request, code=code, actor="x") is False


def test_extension_is_allowed_once_with_an_encrypted_reason() -> None:
    customer = make_customer()
    request = dsr_create(
        type="access", subject_kind="customer_id", subject_value=str(customer.id), actor="x"
    )
    original = request.due_at
    request = dsr_extend(request=request, reason="Complex request: many sources", actor="x")
    assert request.due_at == add_months(original, 2)
    assert request.extension_reason == "Complex request: many sources"
    assert b"many sources" not in _table_bytes("privacy_datasubjectrequest")
    with pytest.raises(RequestStateError):
        dsr_extend(request=request, reason="again", actor="x")


def test_rejection_keeps_its_basis() -> None:
    customer = make_customer()
    request = dsr_create(
        type="erasure", subject_kind="customer_id", subject_value=str(customer.id), actor="x"
    )
    request = dsr_reject(request=request, basis="Identity could not be verified", actor="x")
    assert request.status == "rejected"
    with pytest.raises(RequestStateError):
        dsr_verify(request=request, method="document", actor="x")


def test_unknown_subject_completes_with_a_report(verified: Any, run: Any) -> None:
    request = run(verified("access", "ghost@example.org"))
    assert request.status == "completed"
    assert request.report["subject_found"] is False
    assert "holds no data" in request.report["message"]


def test_rectification_keeps_before_and_after_encrypted_in_the_audit_log(
    verified: Any, run: Any
) -> None:
    customer = make_customer(first_name="Jon", email="jon@example.com")
    request = verified(
        "rectification",
        "jon@example.com",
        changes={"first_name": "John", "email": "john@example.com"},
    )
    request = run(request)
    assert request.status == "completed"
    customer = Customer.objects.get(pk=customer.pk)
    assert customer.first_name == "John"
    assert customer.email == "john@example.com"
    assert customer.identities.filter(kind="email").get().value == "john@example.com"
    entry = AuditEntry.objects.get(action="privacy.rectification")
    assert "Jon" not in str(entry.details) and "john@" not in str(entry.details)
    change = sealed_change_open(customer.id, request.id, entry.details["change_sealed"])
    assert change["before"]["first_name"] == "Jon"
    assert change["after"]["first_name"] == "John"


def test_restriction_stops_consented_processing_and_lifting_is_recorded(
    purposes: None, verified: Any, run: Any
) -> None:
    from consent.selectors import customers_allowed_for
    from consent.services import consent_record

    customer = make_customer(email="r@example.com")
    consent_record(
        customer=customer,
        purpose_code="profiling",
        granted=True,
        channel="admin",
        method="form",
        actor="x",
    )
    assert customers_allowed_for("profiling").filter(pk=customer.pk).exists()
    run(verified("restriction", "r@example.com"))
    assert Customer.objects.get(pk=customer.pk).status == "restricted"
    assert not customers_allowed_for("profiling").filter(pk=customer.pk).exists()
    run(verified("restriction", "r@example.com", lift=True))
    assert Customer.objects.get(pk=customer.pk).status == "active"
    assert customers_allowed_for("profiling").filter(pk=customer.pk).exists()
    assert AuditEntry.objects.filter(
        action="privacy.restriction_lift", object_id=str(customer.pk)
    ).exists()


def test_objection_withdraws_marketing(purposes: None, verified: Any, run: Any) -> None:
    from consent.selectors import customers_allowed_for

    customer = make_customer(email="o@example.com", country="US")  # CCPA: opt-out by default
    assert customers_allowed_for("marketing").filter(pk=customer.pk).exists()
    request = run(verified("objection", "o@example.com"))
    assert request.report["withdrawn"] == ["marketing"]
    assert not customers_allowed_for("marketing").filter(pk=customer.pk).exists()


def test_opt_out_of_sale_runs_without_verification(purposes: None, run: Any) -> None:
    from consent.selectors import customers_allowed_for

    customer = make_customer(country="US")
    assert customers_allowed_for("sale_sharing").filter(pk=customer.pk).exists()
    request = dsr_create(
        type="opt_out_sale", subject_kind="customer_id", subject_value=str(customer.id), actor="x"
    )
    request = run(request)
    assert request.status == "completed"
    assert not customers_allowed_for("sale_sharing").filter(pk=customer.pk).exists()


def test_running_twice_does_nothing_the_second_time(verified: Any, run: Any) -> None:
    customer = make_customer(email="twice@example.com")
    request = run(verified("access", "twice@example.com"))
    assert request.status == "completed"
    again = run(request)
    assert again.status == "completed"
    assert request.packages.count() == 1
    assert customer.pk
