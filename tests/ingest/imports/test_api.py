"""The import API: authorization matrix, upload -> job id, status and counts, error report."""

from __future__ import annotations

import io
import json

import pytest
from rest_framework.test import APIClient

from cdp.api.services import api_token_create
from cdp.ingest.imports.services import import_job_run
from cdp.ingest.models import ImportJob, ImportStatus
from cdp.profiles.roles import ANALYST, COMPLIANCE_OFFICER, CONSENT_ADMIN, PLATFORM_ADMIN
from tests.roles import client_for

pytestmark = pytest.mark.django_db

BODY = b"customer_id,email,first_name\n1,a@shop.example,Ann\n2,broken,Bob\n"


def upload(client, **extra):
    data = {"file": io.BytesIO(BODY), "source": "crm", "kind": "profiles", **extra}
    data["file"].name = "people.csv"
    return client.post("/api/v1/imports/", data, format="multipart")


def token_client(*scopes: str) -> APIClient:
    _, token = api_token_create(name="partner", scopes=list(scopes), actor="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_upload_returns_a_job_id_then_status_counts_and_errors_are_readable() -> None:
    writer = token_client("imports:write")
    reader = token_client("imports:read")

    response = upload(writer)

    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    assert response.json()["status"] == ImportStatus.QUEUED
    import_job_run(job_id=job_id)  # what the worker does (tests/ingest/imports/test_worker.py)
    detail = reader.get(f"/api/v1/imports/{job_id}/").json()
    assert detail["status"] == "completed"
    assert detail["counts"] == {
        "rows_read": 2,
        "created": 1,
        "updated": 0,
        "duplicates": 0,
        "rejected": 1,
        "merges": 0,
        "merges_refused": 0,
        "profiles_created": 1,
    }
    assert detail["fraction"] == 1.0
    errors = reader.get(f"/api/v1/imports/{job_id}/errors").json()
    assert errors["results"] == [
        {
            "row": 3,
            "column": "email",
            "code": "invalid_email",
            "reason": "not a valid e-mail address",
        }
    ]
    csv_report = reader.get(f"/api/v1/imports/{job_id}/errors.csv")
    text = b"".join(csv_report.streaming_content).decode()
    assert text.splitlines() == [
        "row,column,code,reason",
        "3,email,invalid_email,not a valid e-mail address",
    ]
    assert "broken" not in json.dumps(detail) + json.dumps(errors) + text


def test_mapping_and_options_are_validated_with_field_errors() -> None:
    writer = token_client("imports:write")

    response = upload(writer, mapping=json.dumps({"email": "nonsense", "nope": "email"}))

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "import_mapping_invalid"
    assert set(error["fields"]) == {"email", "nope"}
    assert upload(writer, default_region="GBR").status_code == 400


def test_an_empty_file_is_refused_with_the_job_id() -> None:
    writer = token_client("imports:write")
    empty = io.BytesIO(b"")
    empty.name = "empty.csv"

    response = writer.post(
        "/api/v1/imports/", {"file": empty, "source": "crm", "kind": "profiles"}, format="multipart"
    )

    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "import_empty_file"
    assert ImportJob.objects.get(pk=body["fields"]["job"]).status == ImportStatus.FAILED


@pytest.mark.parametrize(
    ("scopes", "upload_status", "read_status"),
    [((), 403, 403), (("imports:read",), 403, 200), (("imports:write",), 202, 403)],
)
def test_token_scopes_gate_upload_and_read(scopes, upload_status, read_status) -> None:
    job_id = upload(token_client("imports:write")).json()["id"]
    client = token_client(*scopes) if scopes else token_client("consent:read")

    assert upload(client).status_code == upload_status
    assert client.get(f"/api/v1/imports/{job_id}/").status_code == read_status
    assert client.get(f"/api/v1/imports/{job_id}/errors").status_code == read_status


def test_anonymous_callers_get_401() -> None:
    assert upload(APIClient()).status_code == 401
    assert ImportJob.objects.count() == 0


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (PLATFORM_ADMIN, True),
        (CONSENT_ADMIN, True),
        (COMPLIANCE_OFFICER, False),
        (ANALYST, False),
    ],
)
def test_staff_roles_in_the_api(django_user_model, role, allowed) -> None:
    client = client_for(django_user_model, role)
    data = {"file": io.BytesIO(BODY), "source": "crm", "kind": "profiles"}
    data["file"].name = "people.csv"

    response = client.post("/api/v1/imports/", data)

    assert response.status_code == (202 if allowed else 403)
    assert ImportJob.objects.count() == (1 if allowed else 0)
