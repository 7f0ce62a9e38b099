"""Consent admin: an authorization matrix per role, decisions with a reason, CSV upload, receipts,
and no decrypted personal data on any page."""

import io
import json

import pytest

from cdp.profiles.roles import ANALYST, COMPLIANCE_OFFICER, CONSENT_ADMIN, PLATFORM_ADMIN
from consent.models import Channel, ConsentEvent, ConsentReason, ConsentState, Purpose
from consent.services import consent_record
from tests.roles import client_for

pytestmark = pytest.mark.django_db

EMAIL = "jane.doe@example.com"
ROLES = [PLATFORM_ADMIN, CONSENT_ADMIN, COMPLIANCE_OFFICER, ANALYST, None]


@pytest.fixture
def customer(customer_in):
    return customer_in("gdpr", email=EMAIL, first_name="Janet")


@pytest.fixture
def granted(customer):
    return consent_record(
        customer=customer,
        purpose_code="marketing",
        granted=True,
        channel=Channel.API,
        method="web-form",
        actor="system",
    )


def assert_no_plaintext(response):
    text = response.content.decode()
    assert EMAIL not in text
    assert "Janet" not in text


def status_of(response):
    if response.status_code == 302:
        assert response["Location"].startswith("/admin/login/")
    return response.status_code


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (PLATFORM_ADMIN, 200),
        (CONSENT_ADMIN, 200),
        (COMPLIANCE_OFFICER, 200),
        (ANALYST, 200),
        (None, 302),
    ],
)
def test_customer_consent_page_per_role(django_user_model, customer, granted, role, expected):
    response = client_for(django_user_model, role).get(
        f"/admin/consent/consentstate/customer/{customer.id}/"
    )
    assert status_of(response) == expected
    if expected == 200:
        text = response.content.decode()
        assert 'id="consent-overview"' in text
        assert "<td>marketing <small>(v1)</small></td>" in text
        assert_no_plaintext(response)
        # the history needs view_consentevent; the form needs record_consent
        assert ('id="consent-history"' in text) == (role != ANALYST)
        assert ('name="reason"' in text) == (role in {PLATFORM_ADMIN, CONSENT_ADMIN})


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (PLATFORM_ADMIN, 302),
        (CONSENT_ADMIN, 302),
        (COMPLIANCE_OFFICER, 403),
        (ANALYST, 403),
        (None, 302),
    ],
)
def test_recording_a_decision_per_role(django_user_model, customer, granted, role, expected):
    # When each role posts a withdrawal with a reason
    client = client_for(django_user_model, role)
    url = f"/admin/consent/consentstate/customer/{customer.id}/"
    response = client.post(
        url,
        {
            "purpose": "marketing",
            "decision": "withdraw",
            "method": "phone-call",
            "reason": "asked on the phone",
        },
    )

    # Then only consent and platform admins change the state
    assert response.status_code == expected
    state = ConsentState.objects.get(customer=customer, purpose_id="marketing")
    if role in {PLATFORM_ADMIN, CONSENT_ADMIN}:
        assert response["Location"] == url
        assert (state.granted, state.channel, state.method) == (False, "admin", "phone-call")
        event = ConsentEvent.objects.get(seq=state.event_seq)
        assert event.actor.startswith("user:")
        assert ConsentReason.objects.get(event_seq=event.seq).text == "asked on the phone"
    else:
        if role is None:
            assert response["Location"].startswith("/admin/login/")
        assert state.granted is True
        assert ConsentEvent.objects.count() == 1


def test_a_decision_without_a_reason_is_refused(django_user_model, customer, granted):
    client = client_for(django_user_model, CONSENT_ADMIN)
    response = client.post(
        f"/admin/consent/consentstate/customer/{customer.id}/",
        {"purpose": "marketing", "decision": "withdraw", "method": "staff", "reason": ""},
    )
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert ConsentEvent.objects.count() == 1


@pytest.mark.parametrize(
    ("role", "list_status", "receipt_status"),
    [
        (PLATFORM_ADMIN, 200, 200),
        (CONSENT_ADMIN, 200, 200),
        (COMPLIANCE_OFFICER, 200, 200),
        (ANALYST, 403, 403),
        (None, 302, 302),
    ],
)
def test_ledger_and_receipt_per_role(
    django_user_model, customer, granted, role, list_status, receipt_status
):
    client = client_for(django_user_model, role)
    listing = client.get("/admin/consent/consentevent/")
    receipt = client.get(f"/admin/consent/consentevent/{granted.seq}/receipt/")
    assert (status_of(listing), status_of(receipt)) == (list_status, receipt_status)
    if receipt_status == 200:
        assert_no_plaintext(listing)
        body = json.loads(receipt.content)
        assert receipt["Content-Disposition"] == (
            f'attachment; filename="consent-receipt-{granted.receipt_id}.json"'
        )
        assert (body["consentReceiptID"], body["piiPrincipalId"], body["state"]) == (
            str(granted.receipt_id),
            str(customer.id),
            "granted",
        )


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (PLATFORM_ADMIN, 200),
        (CONSENT_ADMIN, 200),
        (COMPLIANCE_OFFICER, 200),
        (ANALYST, 200),
        (None, 302),
    ],
)
def test_state_list_is_readable_by_every_role_but_anonymous(
    django_user_model, customer, granted, role, expected
):
    response = client_for(django_user_model, role).get("/admin/consent/consentstate/")
    assert status_of(response) == expected
    if expected == 200:
        assert str(customer.id)[:8] in response.content.decode()
        assert_no_plaintext(response)


@pytest.mark.parametrize(
    ("role", "get_status", "can_edit"),
    [
        (PLATFORM_ADMIN, 200, True),
        (CONSENT_ADMIN, 200, True),
        (COMPLIANCE_OFFICER, 200, False),
        (ANALYST, 403, False),
        (None, 302, False),
    ],
)
def test_editing_a_purpose_text_creates_a_version_per_role(
    django_user_model, role, get_status, can_edit
):
    client = client_for(django_user_model, role)
    purpose = Purpose.objects.get(code="analytics")
    url = f"/admin/consent/purpose/{purpose.pk}/change/"
    assert status_of(client.get(url)) == get_status
    response = client.post(
        url,
        {
            "title": purpose.title,
            "description": "",
            "notice_text": "New wording of the analytics notice.",
            "legal_basis": "consent",
            "covers": "analytics",
            "ccpa_default": "opt_out",
            "other_default": "opt_in",
            "is_active": "on",
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "1",
        },
    )
    purpose.refresh_from_db()
    if can_edit:
        assert response.status_code == 302
        assert (purpose.version, purpose.notice_text) == (2, "New wording of the analytics notice.")
        assert list(purpose.versions.values_list("version", flat=True)) == [2, 1]
    else:
        assert response.status_code in {302, 403}
        assert purpose.version == 1


def test_nobody_can_delete_a_purpose(django_user_model):
    client = client_for(django_user_model, PLATFORM_ADMIN)
    purpose = Purpose.objects.get(code="analytics")
    assert client.get(f"/admin/consent/purpose/{purpose.pk}/delete/").status_code == 403


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (PLATFORM_ADMIN, 200),
        (CONSENT_ADMIN, 200),
        (COMPLIANCE_OFFICER, 403),
        (ANALYST, 403),
        (None, 302),
    ],
)
def test_csv_upload_reports_per_row_per_role(django_user_model, customer, role, expected):
    client = client_for(django_user_model, role)
    upload = io.BytesIO(
        (
            "identifier,purpose,state,timestamp\n"
            f"{EMAIL},marketing,granted,2024-01-01T00:00:00Z\n"
            f"{EMAIL},nope,granted,2024-01-01T00:00:00Z\n"
        ).encode()
    )
    upload.name = "consents.csv"
    response = client.post("/admin/consent/consentstate/import/", {"file": upload})
    assert status_of(response) == expected
    if expected == 200:
        text = response.content.decode()
        assert '<p id="import-summary">2 rows, 1 applied, 1 rejected.</p>' in text
        assert "<tr><td>3</td><td>purpose</td><td>unknown purpose</td></tr>" in text
        assert_no_plaintext(response)
        assert ConsentState.objects.get(customer=customer).granted is True
    else:
        assert ConsentEvent.objects.count() == 0


def test_consent_admin_creates_a_purpose_at_version_one(django_user_model):
    client = client_for(django_user_model, CONSENT_ADMIN)
    response = client.post(
        "/admin/consent/purpose/add/",
        {
            "code": "loyalty",
            "title": "Loyalty programme",
            "description": "",
            "notice_text": "We track points for the loyalty programme.",
            "legal_basis": "contract",
            "covers": "analytics,personalization",
            "ccpa_default": "opt_out",
            "other_default": "opt_in",
            "is_active": "on",
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    purpose = Purpose.objects.get(code="loyalty")
    assert (purpose.version, purpose.covers, purpose.legal_basis) == (
        1,
        ["analytics", "personalization"],
        "contract",
    )
    assert list(purpose.versions.values_list("version", "notice_text")) == [
        (1, "We track points for the loyalty programme.")
    ]
