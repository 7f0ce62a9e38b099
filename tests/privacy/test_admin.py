"""The privacy admin: who sees the queue, who may act and download, deadline highlighting,
the record of processing, and the audit log's subject filter. An authorization matrix per page."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from cdp.audit.models import AuditEntry
from cdp.privacy.models import DataSubjectRequest
from cdp.privacy.services import dsr_create
from cdp.profiles.roles import ANALYST, COMPLIANCE_OFFICER, CONSENT_ADMIN, PLATFORM_ADMIN
from tests.profiles.factories import make_customer
from tests.roles import client_for

pytestmark = pytest.mark.django_db

QUEUE = "/admin/privacy/datasubjectrequest/"


@pytest.mark.parametrize(
    ("role", "expected"),
    [(None, 302), (ANALYST, 403), (CONSENT_ADMIN, 403), (COMPLIANCE_OFFICER, 200)],
)
def test_queue_is_for_compliance_officers(
    django_user_model: Any, role: str | None, expected: int
) -> None:
    client = client_for(django_user_model, role)
    assert client.get(QUEUE).status_code == expected
    assert client.get(reverse("admin:privacy_ropa")).status_code == expected


def test_queue_highlights_overdue_and_due_this_week(django_user_model: Any) -> None:
    customer = make_customer(email="queue@example.com")
    now = timezone.now()
    late = dsr_create(
        type="access",
        subject_kind="customer_id",
        subject_value=str(customer.id),
        actor="x",
        received_at=now - dt.timedelta(days=40),
    )
    soon = dsr_create(
        type="access",
        subject_kind="customer_id",
        subject_value=str(customer.id),
        actor="x",
        received_at=now - dt.timedelta(days=27),
    )
    later = dsr_create(
        type="access", subject_kind="customer_id", subject_value=str(customer.id), actor="x"
    )
    client = client_for(django_user_model, COMPLIANCE_OFFICER)
    page = client.get(QUEUE).content.decode()
    assert page.count("dsr-overdue") == 1
    assert page.count("dsr-due-soon") == 1
    assert "queue@example.com" not in page
    overdue = client.get(QUEUE, {"due": "overdue"}).content.decode()
    assert late.reference in overdue and soon.reference not in overdue
    week = client.get(QUEUE, {"due": "week"}).content.decode()
    assert soon.reference in week and late.reference not in week and later.reference not in week


def test_officer_logs_verifies_and_runs_a_request(django_user_model: Any) -> None:
    make_customer(email="flow@example.com")
    client = client_for(django_user_model, COMPLIANCE_OFFICER)
    response = client.post(
        f"{QUEUE}add/",
        {"type": "erasure", "subject_kind": "email", "subject": "flow@example.com"},
    )
    assert response.status_code == 302
    request = DataSubjectRequest.objects.get()
    run_url = reverse("admin:privacy_request_run", args=[request.pk])
    client.post(run_url)
    request.refresh_from_db()
    assert request.status == "received"  # refused before verification
    response = client.post(
        reverse("admin:privacy_request_verify", args=[request.pk]),
        {"method": "document", "evidence_note": "Driving licence seen"},
    )
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.status == "verified"
    client.post(run_url)
    assert AuditEntry.objects.filter(
        action="privacy.request_run", object_id=str(request.pk)
    ).exists()
    response = client.post(
        reverse("admin:privacy_request_reject", args=[request.pk]), {"reason": "duplicate"}
    )
    request.refresh_from_db()
    assert request.status == "rejected"


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (None, 302),
        (ANALYST, 403),
        (CONSENT_ADMIN, 403),
        (PLATFORM_ADMIN, 403),
        (COMPLIANCE_OFFICER, 200),
    ],
)
def test_only_the_officer_downloads_and_each_download_is_audited(
    django_user_model: Any, verified: Any, run: Any, role: str | None, expected: int
) -> None:
    make_customer(email="admin-dl@example.com")
    request = run(verified("access", "admin-dl@example.com"))
    package = request.packages.get()
    client = client_for(django_user_model, role)
    response = client.get(reverse("admin:privacy_request_download", args=[request.pk, package.pk]))
    assert response.status_code == expected
    downloads = AuditEntry.objects.filter(
        action="privacy.export_download", object_id=str(package.pk)
    )
    assert downloads.count() == (1 if expected == 200 else 0)
    if expected == 200:
        assert response.content.startswith(b"PK")
        page = client.get(reverse("admin:privacy_datasubjectrequest_change", args=[request.pk]))
        assert b"audited" in page.content and b"admin-dl@example.com" not in page.content


def test_record_of_processing_lists_purposes_fields_and_sources(
    django_user_model: Any, purposes: None, source: Any
) -> None:
    client = client_for(django_user_model, COMPLIANCE_OFFICER)
    page = client.get(reverse("admin:privacy_ropa")).content.decode()
    assert "Marketing (marketing v1)" in page
    assert "profiles.Customer.email" in page
    assert source.name in page
    csv = client.get(reverse("admin:privacy_ropa_csv"))
    assert csv["Content-Type"].startswith("text/csv")
    assert b"security measures" in csv.content
    html = client.get(reverse("admin:privacy_ropa_html"))
    assert b"Record of processing activities" in html.content
    assert b"http" not in html.content


def test_audit_log_filters_by_subject_without_the_identifier_in_a_url(
    django_user_model: Any, verified: Any, run: Any
) -> None:
    customer = make_customer(email="audited@example.com")
    make_customer(email="someone-else@example.com")
    request = run(verified("erasure", "audited@example.com"))
    client = client_for(django_user_model, COMPLIANCE_OFFICER)
    response = client.post("/admin/audit/auditentry/", {"subject_lookup": "audited@example.com"})
    assert response.status_code == 302
    assert "audited" not in response["Location"]
    page = client.get(response["Location"]).content.decode()
    assert '<td class="field-action">privacy.erasure</td>' in page
    assert '<td class="field-action">customer.create</td>' in page  # this customer's only
    assert page.count('<td class="field-action">customer.create</td>') == 1
    actions = set(
        AuditEntry.objects.filter(object_id__in=[str(request.pk), str(customer.pk)]).values_list(
            "action", flat=True
        )
    )
    assert {"privacy.request_create", "privacy.erasure", "customer.create"} <= actions
    by_actor = client.get("/admin/audit/auditentry/", {"actor": "user:1"}).content.decode()
    assert '<td class="field-action">privacy.request_create</td>' in by_actor
    assert '<td class="field-action">customer.create</td>' not in by_actor
