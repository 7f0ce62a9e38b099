"""The privacy REST API: scoped tokens, the Segment-compatible regulations endpoint and the
signed export link; an authorization matrix for each endpoint."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from cdp.api.services import api_token_create
from cdp.audit.models import AuditEntry
from cdp.privacy.models import DataSubjectRequest, Regulation
from cdp.privacy.regulations import regulation_execute
from cdp.profiles.models import Customer
from tests.profiles.factories import make_customer

pytestmark = pytest.mark.django_db

REQUESTS = "/api/v1/privacy/requests/"


def token_client(*scopes: str) -> APIClient:
    _, token = api_token_create(name="partner", scopes=list(scopes), actor="system")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_partner_forwards_a_request_and_reads_it_back() -> None:
    customer = make_customer(email="api@example.com", country="US")
    writer = token_client("privacy:write", "privacy:read")
    response = writer.post(
        REQUESTS,
        {"type": "erasure", "subject_kind": "email", "subject": "api@example.com"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["regime"] == "ccpa"
    assert body["status"] == "received"
    assert body["subject_found"] is True
    assert body["channel"] == "api"
    assert "api@example.com" not in response.content.decode()
    request = DataSubjectRequest.objects.get(pk=body["id"])
    assert request.customer_id == customer.id
    detail = writer.get(f"{REQUESTS}{body['id']}/")
    assert detail.status_code == 200
    assert detail.json()["download_url"] is None
    listing = writer.get(REQUESTS, {"status": "received"})
    assert listing.json()["count"] == 1


def test_invalid_request_gets_the_error_shape() -> None:
    writer = token_client("privacy:write")
    response = writer.post(
        REQUESTS, {"type": "access", "subject_kind": "email", "subject": "nope"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "privacy_subject_invalid"
    assert "nope" not in response.content.decode()


@pytest.mark.parametrize(
    ("scopes", "method", "expected"),
    [
        ((), "get", 403),
        (("consent:read",), "get", 403),
        (("privacy:write",), "get", 403),
        (("privacy:read",), "get", 200),
        (("privacy:read",), "post", 403),
        (("consent:write",), "post", 403),
        (("privacy:write",), "post", 201),
    ],
)
def test_request_endpoint_scopes(scopes: tuple[str, ...], method: str, expected: int) -> None:
    make_customer(email="scoped@example.com")
    client = token_client(*scopes) if scopes else token_client("profiles:read")
    body = {"type": "access", "subject_kind": "email", "subject": "scoped@example.com"}
    response = getattr(client, method)(REQUESTS, body if method == "post" else None, format="json")
    assert response.status_code == expected


def test_anonymous_gets_nothing(verified: Any, run: Any) -> None:
    make_customer(email="anon@example.com")
    request = run(verified("access", "anon@example.com"))
    reader = token_client("privacy:read", "privacy:export")
    url = reader.get(f"{REQUESTS}{request.id}/").json()["download_url"]
    anonymous = APIClient()
    assert anonymous.get(REQUESTS).status_code in (401, 403)
    assert anonymous.post(REQUESTS, {}, format="json").status_code in (401, 403)
    assert anonymous.get(f"{REQUESTS}{request.id}/").status_code in (401, 403)
    assert anonymous.get(url).status_code in (401, 403)
    assert anonymous.post("/api/v1/regulations/", {}, format="json").status_code in (401, 403)
    assert not AuditEntry.objects.filter(action="privacy.export_download").exists()


def test_signed_link_needs_the_export_scope_and_is_audited(verified: Any, run: Any) -> None:
    make_customer(email="dl@example.com")
    request = run(verified("access", "dl@example.com"))
    exporter = token_client("privacy:read", "privacy:export")
    url = exporter.get(f"{REQUESTS}{request.id}/").json()["download_url"]
    assert url and "/api/v1/privacy/exports/" in url
    assert token_client("privacy:read").get(url).status_code == 403
    assert not AuditEntry.objects.filter(action="privacy.export_download").exists()
    response = exporter.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response.content.startswith(b"PK")
    assert AuditEntry.objects.filter(action="privacy.export_download").count() == 1
    forged = exporter.get(url.replace("/download", "x/download"))
    assert forged.status_code == 404
    assert forged.json()["error"]["code"] == "export_link_invalid"


def test_regulation_suppress_with_delete_runs_to_finished() -> None:
    one = make_customer(identifiers=[], email="reg1@example.com")
    two = make_customer(email="reg2@example.com")
    from cdp.profiles.models import IdentityKind
    from cdp.profiles.services import IdentifierValue

    three = make_customer(identifiers=[IdentifierValue(IdentityKind.USER_ID, "crm-42")])
    client = token_client("privacy:write", "privacy:read")
    response = client.post(
        "/api/v1/regulations/",
        {
            "regulationType": "SUPPRESS_WITH_DELETE",
            "subjectType": "USER_ID",
            "subjectIds": ["crm-42", "crm-404"],
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    regulation_id = response.json()["data"]["regulateId"]
    status = client.get(f"/api/v1/regulations/{regulation_id}").json()["data"]["regulation"]
    assert status["overallStatus"] == "INITIALIZED"
    regulation_execute(regulation_id=Regulation.objects.get().pk)
    status = client.get(f"/api/v1/regulations/{regulation_id}").json()["data"]["regulation"]
    assert status["overallStatus"] == "FINISHED"
    assert status["counts"] == {"requests": 2, "completed": 2, "failed": 0}
    assert not Customer.objects.filter(pk=three.pk).exists()
    assert Customer.objects.filter(pk__in=[one.pk, two.pk]).count() == 2


def test_regulation_suppress_only_and_unsuppress() -> None:
    from cdp.ingest.models import Suppression

    client = token_client("privacy:write")
    for kind in ("SUPPRESS_ONLY", "UNSUPPRESS"):
        response = client.post(
            "/api/v1/regulations/",
            {"regulationType": kind, "subjectType": "EMAIL", "subjectIds": ["s@example.com"]},
            format="json",
        )
        assert response.status_code == 200
        regulation_execute(regulation_id=response.json()["data"]["regulateId"])
        assert Suppression.objects.count() == (1 if kind == "SUPPRESS_ONLY" else 0)


def test_regulation_refuses_more_than_5000_subjects() -> None:
    client = token_client("privacy:write")
    response = client.post(
        "/api/v1/regulations/",
        {"regulationType": "DELETE_ONLY", "subjectType": "USER_ID", "subjectIds": ["x"] * 5001},
        format="json",
    )
    assert response.status_code == 400
    assert "subjectIds" in response.json()["error"]["fields"]
    assert not Regulation.objects.exists()


def test_request_list_queries_do_not_grow_with_the_page(
    verified: Any, run: Any, django_assert_max_num_queries: Any
) -> None:
    reader = token_client("privacy:read", "privacy:export")
    make_customer(email="page0@example.com")
    run(verified("access", "page0@example.com"))
    with django_assert_max_num_queries(6) as small:
        assert reader.get(REQUESTS).json()["count"] == 1
    for n in range(1, 6):
        make_customer(email=f"page{n}@example.com")
        run(verified("access", f"page{n}@example.com"))
    with django_assert_max_num_queries(len(small.captured_queries)):
        body = reader.get(REQUESTS).json()
    assert body["count"] == 6
    assert all(r["download_url"] for r in body["results"])
