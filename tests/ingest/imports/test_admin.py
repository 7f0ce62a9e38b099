"""The import admin: authorization matrix, mapping page with a masked preview, saved mapping."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from cdp.ingest.models import ColumnMapping, ImportJob, ImportStatus
from cdp.profiles.roles import ANALYST, COMPLIANCE_OFFICER, CONSENT_ADMIN, PLATFORM_ADMIN
from tests.roles import client_for

pytestmark = pytest.mark.django_db

BODY = b"Customer No,E-mail,Tel,First Name\n1,jane.doe@shop.example,+442079460958,Janet\n"
PLAINTEXT = ("jane.doe@shop.example", "+442079460958", "2079460958", "Janet")


def post_upload(client):
    return client.post(
        "/admin/ingest/importjob/add/",
        {
            "file": SimpleUploadedFile("people.csv", BODY),
            "source": "crm",
            "kind": "profiles",
        },
    )


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (None, False),
        (PLATFORM_ADMIN, True),
        (CONSENT_ADMIN, True),
        (COMPLIANCE_OFFICER, False),
        (ANALYST, False),
    ],
)
def test_upload_and_mapping_pages_by_role(django_user_model, role, allowed) -> None:
    client = client_for(django_user_model, role)

    response = post_upload(client)

    if not allowed:
        assert response.status_code in (302, 403)
        assert ImportJob.objects.count() == 0
        return
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/ingest/importjob/{job.pk}/mapping/"
    page = client.get(response["Location"]).content.decode()
    assert "j***@shop.example" in page and "J***" in page
    for value in PLAINTEXT:
        assert value not in page


def test_mapping_correction_starts_the_job_and_is_saved_for_the_source(django_user_model) -> None:
    client = client_for(django_user_model, CONSENT_ADMIN)
    post_upload(client)
    job = ImportJob.objects.get()
    assert job.mapping == {
        "Customer No": "customer_id",
        "E-mail": "email",
        "Tel": "phone",
        "First Name": "first_name",
    }

    response = client.post(
        f"/admin/ingest/importjob/{job.pk}/mapping/",
        {
            "map-0": "customer_id",
            "map-1": "email",
            "map-2": "ignore",
            "map-3": "first_name",
            "save_for_source": "on",
            "priority": "5",
            "rules": "email,customer_id",
        },
    )

    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == ImportStatus.QUEUED
    assert job.mapping["Tel"] == "ignore"
    assert job.options["rules"] == ["email", "customer_id"]
    saved = ColumnMapping.objects.get()
    assert (saved.mapping, saved.priority) == (job.mapping, 5)
    # The next upload from this source with the same headers reuses the saved mapping.
    post_upload(client)
    assert ImportJob.objects.order_by("-created_at").first().mapping["Tel"] == "ignore"


def test_invalid_mapping_is_shown_with_the_column(django_user_model) -> None:
    client = client_for(django_user_model, CONSENT_ADMIN)
    post_upload(client)
    job = ImportJob.objects.get()

    response = client.post(
        f"/admin/ingest/importjob/{job.pk}/mapping/",
        {"map-0": "email", "map-1": "email", "map-2": "ignore", "map-3": "ignore"},
    )

    assert response.status_code == 200
    assert "email is already mapped from another column" in response.content.decode()
    job.refresh_from_db()
    assert job.status == ImportStatus.MAPPING


@pytest.mark.parametrize(
    ("role", "allowed"),
    [(None, False), (CONSENT_ADMIN, True), (COMPLIANCE_OFFICER, False), (ANALYST, False)],
)
def test_progress_and_error_report_by_role(django_user_model, role, allowed) -> None:
    admin = client_for(django_user_model, PLATFORM_ADMIN)
    post_upload(admin)
    job = ImportJob.objects.get()
    client = client_for(django_user_model, role) if role != PLATFORM_ADMIN else admin

    progress = client.get(f"/admin/ingest/importjob/{job.pk}/progress.json")
    report = client.get(f"/admin/ingest/importjob/{job.pk}/errors.csv")

    if allowed:
        assert progress.json()["status"] == "mapping"
        assert b"".join(report.streaming_content) == b"row,column,code,reason\r\n"
    else:
        assert progress.status_code in (302, 403)
        assert report.status_code in (302, 403)
    assert io is not None
