"""Data-subject requests end to end.

1. The issue's proof: a customer arrives through the tracking API and a CSV import, gives
   and withdraws consent, lands in features and a segment; a
   partner's access request runs on a real worker and the package holds every one of those facts;
   the erasure leaves nothing the scan can find, the certificate lists it, the consent and audit
   chains still verify, and a new event for the same e-mail is suppressed.
2. The compliance officer's queue in a real browser: overdue and due-this-week rows stand out,
   the filters work, a request is verified and its package downloaded (audited).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Page, expect

from cdp.audit.models import AuditEntry
from cdp.profiles.roles import COMPLIANCE_OFFICER

EMAIL = "e2e.subject@example.com"
USER_ID = "crm-e2e-1"


@pytest.fixture
def ledger_emptied() -> Iterator[None]:
    yield
    from consent.testing import consent_ledger_clear_for_tests

    consent_ledger_clear_for_tests()


def _purposes() -> None:
    """Purposes and property classes: a transactional test's flush removes the seeded rows."""
    from cdp.ingest.classification import property_classes_seed
    from consent.models import Purpose
    from consent.services import purpose_create

    property_classes_seed()

    for code in ("analytics", "profiling", "marketing", "personalization", "sale_sharing"):
        if not Purpose.objects.filter(code=code).exists():
            purpose_create(
                code=code,
                title=code.title(),
                notice_text=f"We use your data for {code}.",
                covers=[code],
                actor="system",
            )


def _message(kind: str, preferences: dict[str, bool], **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "messageId": str(uuid.uuid4()),
        "userId": USER_ID,
        "timestamp": timezone.now().isoformat(),
        "context": {
            "library": {"name": "e2e", "version": "1"},
            "consent": {"categoryPreferences": preferences},
        },
        **fields,
    }


def _post_batch(write_key: str, batch: list[dict[str, Any]]) -> dict[str, Any]:
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    response = Client().post(
        "/v1/batch",
        data=json.dumps({"batch": batch}),
        content_type="application/json",
        headers={"Authorization": auth},
    )
    assert response.status_code == 200, response.content
    return response.json()


def _wait_for(request_id: uuid.UUID, seconds: float = 60) -> Any:
    from cdp.privacy.models import DataSubjectRequest

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        request = DataSubjectRequest.objects.get(pk=request_id)
        if request.status in ("completed", "failed", "rejected"):
            return request
        time.sleep(0.2)
    raise AssertionError(f"request still {request.status} after {seconds}s")


def _api(*scopes: str) -> Any:
    from rest_framework.test import APIClient

    from cdp.api.services import api_token_create

    _, token = api_token_create(name="partner", scopes=list(scopes), actor="system")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_access_then_erasure_of_a_tracked_subject(
    celery_worker_process: Any, ledger_emptied: None
) -> None:
    from cdp.audit.selectors import audit_chain_verify
    from cdp.ingest.services import source_create
    from cdp.privacy.models import ErasureCertificate
    from cdp.profiles.models import Customer, Identity, SourceRecord
    from consent.ledger import ledger_verify
    from segmentation.models import CustomerFeatures
    from segmentation.segments.models import Segment, SegmentMembership
    from segmentation.segments.services import segment_refresh, segment_save
    from segmentation.services import features_compute
    from tests.ingest.imports.helpers import run_import

    _purposes()
    issued = source_create(name="web-shop", actor="system")
    everything = {"analytics": True, "profiling": True, "marketing": True, "personalization": True}
    identify = _message(
        "identify", everything, traits={"email": EMAIL, "firstName": "Erin", "plan": "gold"}
    )
    orders = [
        _message(
            "track",
            everything,
            event="Order Completed",
            properties={"order_id": f"o-{n}", "revenue": 20 + n, "currency": "GBP"},
        )
        for n in range(3)
    ]
    withdraw = _message("track", {**everything, "personalization": False}, event="Product Viewed")
    result = _post_batch(issued.write_key, [identify, *orders])
    assert result["accepted"] == 4
    assert _post_batch(issued.write_key, [withdraw])["accepted"] == 1
    customer = Identity.objects.get(kind="email").customer
    # The CRM's export adds a phone and a loyalty tier; the e-mail links the row to the profile.
    crm_csv = f"email,phone,country,loyalty_tier\n{EMAIL},+44 20 7946 0018,GB,silver\n".encode()
    crm = run_import(crm_csv, source="crm", options={"default_region": "GB"})
    assert (crm.status, crm.created + crm.updated, crm.rejected) == ("completed", 1, 0)
    assert SourceRecord.objects.filter(customer=customer).count() == 1
    features_compute(actor="test")
    assert CustomerFeatures.objects.filter(customer=customer).exists()
    segment = segment_save(
        segment=Segment(
            name="gold plan",
            purpose_id="marketing",
            condition={"field": "trait.plan", "op": "eq", "value": "gold"},
        ),
        actor="test",
    )
    refresh = segment_refresh(segment_id=segment.id)
    assert refresh is not None and refresh.status == "succeeded", refresh and refresh.error
    assert SegmentMembership.objects.filter(customer=customer).exists()

    # Access: forwarded by a partner that verified the subject; runs on the worker.
    partner = _api("privacy:write", "privacy:read", "privacy:export")
    created = partner.post(
        "/api/v1/privacy/requests/",
        {"type": "access", "subject_kind": "email", "subject": EMAIL, "verified": True},
        format="json",
    ).json()
    access = _wait_for(uuid.UUID(created["id"]))
    assert access.status == "completed", access.report
    url = partner.get(f"/api/v1/privacy/requests/{access.id}/").json()["download_url"]
    zipped = partner.get(url)
    assert zipped.status_code == 200
    files = zipfile.ZipFile(io.BytesIO(zipped.content))
    doc = json.loads(files.read("package.json"))
    assert doc["profiles"][0]["email"] == EMAIL
    assert doc["profiles"][0]["first_name"] == "Erin"
    records = doc["records"]
    assert {i["value"] for i in records["profiles.Identity"]["rows"]} >= {
        EMAIL,
        USER_ID,
        "+442079460018",
    }
    assert records["profiles.SourceRecord"]["rows"][0]["source_name"] == "crm"
    assert sorted(e["name"] for e in records["ingest.Event"]["rows"]).count("Order Completed") == 3
    assert records["segmentation.CustomerFeatures"]["rows"][0]["customer"] == str(customer.id)
    membership = records["segments.SegmentMembership"]["rows"][0]
    assert membership["segment"]["label"]
    assert "rule" in records["segments.SegmentMembership"]["explanation"]
    decisions = {(h["purpose"], h["granted"]) for h in doc["consent_history"]}
    assert {("personalization", True), ("personalization", False)} <= decisions
    assert all("receipt" in h for h in doc["consent_history"])
    assert [r["type"] for r in doc["request_history"]] == ["access"]
    assert AuditEntry.objects.filter(action="privacy.export_download").count() == 1

    # Erasure on the worker: nothing left for the scan, a certificate, chains intact.
    created = partner.post(
        "/api/v1/privacy/requests/",
        {"type": "erasure", "subject_kind": "user_id", "subject": USER_ID, "verified": True},
        format="json",
    ).json()
    erasure = _wait_for(uuid.UUID(created["id"]))
    assert erasure.status == "completed", erasure.report
    cert = ErasureCertificate.objects.get(request=erasure)
    assert cert.clean and cert.scan["residue"] == []
    for label in (
        "profiles.Customer",
        "profiles.Identity",
        "profiles.SourceRecord",
        "ingest.Event",
        "segmentation.CustomerFeatures",
        "segments.SegmentMembership",
        "consent.ConsentState",
        "privacy.ExportPackage",
    ):
        assert cert.deleted.get(label, 0) >= 1, label
    assert not Customer.objects.filter(pk=customer.pk).exists()
    assert audit_chain_verify().ok
    assert ledger_verify().ok

    again = _message(
        "identify", everything, userId=None, anonymousId="fresh", traits={"email": EMAIL}
    )
    result = _post_batch(issued.write_key, [again])
    assert result["suppressed"] == 1 and result["accepted"] == 0
    assert not Identity.objects.filter(kind="email").exists()
    # Re-importing the CRM file brings nobody back: the row is rejected as suppressed.
    again_crm = run_import(crm_csv, source="crm", name="again.csv")
    assert (again_crm.created, again_crm.rejected) == (0, 1)
    assert again_crm.row_errors.get().code == "suppressed"
    assert not SourceRecord.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_officer_works_the_queue_in_the_browser(
    page: Page, login_as: Callable[[str], Any], ledger_emptied: None
) -> None:
    from cdp.privacy.services import dsr_create
    from tests.profiles.factories import make_customer

    customer = make_customer(email="browser.subject@example.com")
    now = timezone.now()
    late = dsr_create(
        type="access",
        subject_kind="customer_id",
        subject_value=str(customer.id),
        actor="x",
        received_at=now - dt.timedelta(days=40),
    )
    soon = dsr_create(
        type="erasure",
        subject_kind="email",
        subject_value="browser.subject@example.com",
        actor="x",
        received_at=now - dt.timedelta(days=27),
    )
    login_as(COMPLIANCE_OFFICER)
    page.get_by_role("link", name="Data-subject requests", exact=True).click()
    expect(page.locator(".dsr-overdue")).to_have_count(1)
    expect(page.locator(".dsr-due-soon")).to_have_count(1)
    assert "browser.subject@example.com" not in page.content()

    page.get_by_role("link", name="Overdue").click()
    expect(page.get_by_role("link", name=late.reference)).to_be_visible()
    expect(page.get_by_role("link", name=soon.reference)).to_have_count(0)

    page.get_by_role("link", name=late.reference).click()
    page.get_by_role("link", name="Verify identity").click()
    page.get_by_label("Method").select_option("document")
    page.get_by_label("Evidence note").fill("Passport checked at the desk")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("identity verified")).to_be_visible()
    assert "Passport checked" not in page.content()

    # The worker's code path, in-process (the browser test has no worker).
    from cdp.privacy.services import dsr_execute

    dsr_execute(request_id=late.id)
    page.reload()
    with page.expect_download() as download:
        page.get_by_role("link", name="audited").first.click()
    assert download.value.suggested_filename == f"{late.reference.lower()}.zip"
    assert AuditEntry.objects.filter(action="privacy.export_download").count() == 1

    page.goto("/admin/privacy/datasubjectrequest/")
    page.get_by_role("link", name="Record of processing").click()
    expect(page.locator("#ropa")).to_contain_text("security measures")
