"""Consent over the REST API: authorization matrix, recording by each identifier, state, history
with receipts, Sec-GPC, /.well-known/gpc.json, and the error shape."""

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from cdp.api.services import api_token_create
from cdp.profiles.models import IdentityKind
from cdp.profiles.roles import ANALYST, CONSENT_ADMIN
from cdp.profiles.services import IdentifierValue
from consent.models import ConsentEvent, ConsentState

pytestmark = pytest.mark.django_db

EMAIL = "sam@example.com"


@pytest.fixture
def customer(customer_in):
    return customer_in(
        "ccpa", email=EMAIL, identifiers=[IdentifierValue(IdentityKind.USER_ID, "crm-7")]
    )


def token_client(*scopes):
    _, token = api_token_create(name="partner", scopes=list(scopes), actor="system")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def record_body(**overrides):
    body = {
        "email": EMAIL,
        "purpose": "marketing",
        "granted": True,
        "collection_method": "web-form",
    }
    body.update(overrides)
    return body


# --- authorization matrix ------------------------------------------------------------------------

ENDPOINTS = [
    ("post", "/api/v1/consents", "consent:write", 201),
    ("get", "/api/v1/customers/{id}/consents", "consent:read", 200),
    ("get", "/api/v1/customers/{id}/consents/history", "consent:read", 200),
    ("post", "/api/v1/consents/lookup", "consent:read", 200),
]


@pytest.mark.parametrize(("method", "path", "scope", "ok"), ENDPOINTS)
@pytest.mark.parametrize(
    ("caller", "expected"),
    [("anonymous", 401), ("wrong-scope", 403), ("right-scope", None), ("bad-token", 401)],
)
def test_authorization_matrix(customer, method, path, scope, ok, caller, expected):
    if caller == "anonymous":
        client = APIClient()
    elif caller == "bad-token":
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Bearer cdp_nope_nope")
    else:
        other = "profiles:read" if caller == "wrong-scope" else scope
        client = token_client(other)
    body = record_body() if path == "/api/v1/consents" else {"email": EMAIL}
    url = path.format(id=customer.id)
    response = getattr(client, method)(url, body if method == "post" else None, format="json")

    assert response.status_code == (expected or ok)
    if expected:
        assert set(response.json()["error"]) == {"code", "message", "fields"}
        assert ConsentEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("role", "record_status", "state_status", "history_status"),
    [(CONSENT_ADMIN, 201, 200, 200), (ANALYST, 403, 200, 403), (None, 403, 403, 403)],
)
def test_staff_sessions_pass_by_django_permission(
    django_user_model, customer, role, record_status, state_status, history_status
):
    user = django_user_model.objects.create_user("staff", password="pw-" + "x" * 16)
    if role:
        user.groups.add(Group.objects.get(name=role))
    client = APIClient()
    client.force_login(user)
    assert client.post("/api/v1/consents", record_body(), format="json").status_code == (
        record_status
    )
    assert client.get(f"/api/v1/customers/{customer.id}/consents").status_code == state_status
    assert (
        client.get(f"/api/v1/customers/{customer.id}/consents/history").status_code
        == history_status
    )


# --- recording -----------------------------------------------------------------------------------


@pytest.mark.parametrize("identifier", ["customer_id", "user_id", "email"])
def test_record_by_each_identifier_returns_the_event_and_its_receipt(customer, identifier):
    value = {"customer_id": str(customer.id), "user_id": "crm-7", "email": "SAM@example.com"}
    body = {
        identifier: value[identifier],
        "purpose": "marketing",
        "granted": False,
        "collection_method": "preference-center",
        "notice_version": 1,
    }
    response = token_client("consent:write").post(
        "/api/v1/consents",
        body,
        format="json",
        HTTP_USER_AGENT="Mozilla/5.0",
        REMOTE_ADDR="198.51.100.9",
    )

    assert response.status_code == 201
    event = response.json()["event"]
    stored = ConsentEvent.objects.get()
    assert (event["seq"], event["customer_id"], event["purpose"], event["granted"]) == (
        1,
        str(customer.id),
        "marketing",
        False,
    )
    assert (event["channel"], event["method"], event["notice_version"]) == (
        "api",
        "preference-center",
        1,
    )
    assert stored.actor.startswith("token:")
    receipt = event["receipt"]
    assert receipt["version"] == "KI-CR-v1.1.0"
    assert receipt["consentReceiptID"] == str(stored.receipt_id)
    assert receipt["piiPrincipalId"] == str(customer.id)
    assert receipt["jurisdiction"] == "US-CA CCPA/CPRA"
    assert receipt["collectionMethod"] == "api:preference-center"
    assert receipt["consentTimestamp"] == int(stored.at.timestamp())
    assert receipt["services"][0]["purposes"][0]["purposeCode"] == "marketing"
    assert receipt["services"][0]["purposes"][0]["termination"] == "withdrawn"
    assert receipt["notice"] == {"version": 1, "textSha256": stored.notice_hash}
    assert EMAIL not in response.content.decode()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (record_body(purpose="nope"), 400, "consent_purpose_unknown"),
        (record_body(email="nobody@example.com"), 404, "consent_customer_unknown"),
        (record_body(notice_version=7), 400, "consent_notice_version_unknown"),
        (record_body(user_id="crm-7"), 400, "invalid"),
        (record_body(collection_method="a b"), 400, "invalid"),
        (record_body(granted=False, expires_at="2099-01-01T00:00:00Z"), 400, "consent_invalid"),
    ],
    ids=["purpose", "customer", "version", "two-identifiers", "method", "expiry-on-withdrawal"],
)
def test_errors_have_one_shape_and_write_nothing(customer, body, status, code):
    response = token_client("consent:write").post("/api/v1/consents", body, format="json")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert "nobody@" not in response.content.decode()
    assert ConsentEvent.objects.count() == 0


def test_state_shows_each_purpose_with_the_selectors_answer(customer):
    writer = token_client("consent:write")
    writer.post("/api/v1/consents", record_body(granted=False), format="json")
    response = token_client("consent:read").get(f"/api/v1/customers/{customer.id}/consents")
    body = response.json()
    assert (body["customer_id"], body["jurisdiction"], body["gpc_opt_outs"]) == (
        str(customer.id),
        "ccpa",
        0,
    )
    by_code = {p["purpose"]: p for p in body["purposes"]}
    assert (by_code["marketing"]["state"], by_code["marketing"]["allowed"]) == ("withdrawn", False)
    assert (by_code["analytics"]["state"], by_code["analytics"]["allowed"]) == ("none", True)
    assert by_code["analytics"]["default"] == "opt_out"


def test_history_is_paginated_newest_first_with_receipts(customer, django_assert_max_num_queries):
    writer = token_client("consent:write")
    for granted in (True, False, True):
        writer.post("/api/v1/consents", record_body(granted=granted), format="json")
    reader = token_client("consent:read")
    with django_assert_max_num_queries(6):
        response = reader.get(f"/api/v1/customers/{customer.id}/consents/history?limit=2")
    body = response.json()
    assert body["count"] == 3
    assert [(e["seq"], e["granted"]) for e in body["results"]] == [(3, True), (2, False)]
    assert body["results"][0]["receipt"]["ledger"]["seq"] == 3


def test_unknown_customer_id_is_404(customer):
    import uuid

    response = token_client("consent:read").get(f"/api/v1/customers/{uuid.uuid4()}/consents")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "consent_customer_unknown"


# --- GPC -----------------------------------------------------------------------------------------


def test_sec_gpc_header_records_the_opt_out_once_and_absence_is_no_opt_in(customer):
    reader = token_client("consent:read")
    url = f"/api/v1/customers/{customer.id}/consents"

    # Given a CCPA customer allowed for sale/sharing by default
    first = reader.get(url, HTTP_SEC_GPC="1").json()
    # Then the first request with the signal records the opt-out (method gpc)
    assert first["gpc_opt_outs"] == 1
    assert {p["purpose"]: p["allowed"] for p in first["purposes"]}["sale_sharing"] is False
    event = ConsentEvent.objects.get(purpose_code="sale_sharing")
    assert (event.granted, event.channel, event.method) == (False, "gpc", "gpc")

    # And a repeat records nothing; a later request without the header is not an opt-in
    assert reader.get(url, HTTP_SEC_GPC="1").json()["gpc_opt_outs"] == 0
    later = reader.get(url).json()
    assert {p["purpose"]: p["allowed"] for p in later["purposes"]}["sale_sharing"] is False
    assert ConsentEvent.objects.filter(purpose_code="sale_sharing").count() == 1


def test_gpc_on_a_grant_of_sale_sharing_wins(customer):
    response = token_client("consent:write").post(
        "/api/v1/consents", record_body(purpose="sale_sharing"), format="json", HTTP_SEC_GPC="1"
    )
    assert response.status_code == 201
    assert response.json()["gpc_opt_outs"] == 1
    assert ConsentState.objects.get(customer=customer, purpose_id="sale_sharing").granted is False


def test_well_known_gpc_json_is_public(settings):
    response = APIClient().get("/.well-known/gpc.json")
    assert response.status_code == 200
    assert response.json() == {"gpc": True, "lastUpdate": "2026-11-23"}
    settings.CDP_GPC_LAST_UPDATE = "2027-01-31"
    assert APIClient().get("/.well-known/gpc.json").json()["lastUpdate"] == "2027-01-31"


def test_consent_endpoints_are_in_the_openapi_schema():
    response = APIClient().get("/api/schema/?format=json")
    paths = response.json()["paths"]
    assert {
        "/api/v1/consents",
        "/api/v1/consents/lookup",
        "/api/v1/customers/{customer_id}/consents",
        "/api/v1/customers/{customer_id}/consents/history",
    } <= set(paths)
    assert paths["/api/v1/consents"]["post"]["operationId"] == "consent_record"
