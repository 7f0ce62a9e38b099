"""Sources, property classes and events in the admin: an authorization matrix, the write key
shown once at creation and never again, audited rotation, classes editable."""

from __future__ import annotations

import pytest

from cdp.audit.models import AuditEntry
from cdp.ingest.classification import classes
from cdp.ingest.models import PropertyClass, Source
from cdp.profiles.roles import ANALYST, COMPLIANCE_OFFICER, CONSENT_ADMIN, PLATFORM_ADMIN
from tests.roles import client_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("page", ["source", "propertyclass", "event", "suppression"])
@pytest.mark.parametrize(
    ("role", "statuses"),
    [
        (PLATFORM_ADMIN, {"source": 200, "propertyclass": 200, "event": 200, "suppression": 200}),
        (CONSENT_ADMIN, {"source": 200, "propertyclass": 200, "event": 403, "suppression": 403}),
        (
            COMPLIANCE_OFFICER,
            {"source": 200, "propertyclass": 200, "event": 403, "suppression": 200},
        ),
        (ANALYST, {"source": 403, "propertyclass": 403, "event": 403, "suppression": 403}),
        (None, {"source": 302, "propertyclass": 302, "event": 302, "suppression": 302}),
    ],
)
def test_ingest_admin_pages_per_role(django_user_model, source, role, statuses, page):
    response = client_for(django_user_model, role).get(f"/admin/ingest/{page}/")

    assert response.status_code == statuses[page]
    assert source.write_key not in response.content.decode()


@pytest.mark.parametrize(
    ("role", "allowed"),
    [(PLATFORM_ADMIN, True), (CONSENT_ADMIN, True), (COMPLIANCE_OFFICER, False)],
)
def test_adding_a_source_shows_its_key_once(django_user_model, role, allowed):
    client = client_for(django_user_model, role)

    response = client.post(
        "/admin/ingest/source/add/",
        {
            "name": "pos-terminals",
            "kind": "server",
            "enabled": "on",
            "max_request_bytes": 1000,
            "max_message_bytes": 1000,
            "max_batch_messages": 10,
            "max_depth": 8,
            "max_event_age_days": 30,
        },
        follow=True,
    )

    if not allowed:
        assert response.status_code == 403
        assert not Source.objects.exists()
        return
    text = response.content.decode()
    source = Source.objects.get(name="pos-terminals")
    assert source.max_request_bytes == 1000
    key = text.split("Write key for pos-terminals: ", 1)[1].split(" ", 1)[0]
    assert key.startswith("wk_") and key.startswith(source.key_prefix)
    again = client.get(f"/admin/ingest/source/{source.pk}/change/").content.decode()
    assert key not in again
    assert AuditEntry.objects.filter(action="ingest.source.create").count() == 1


def test_rotating_from_the_admin_needs_the_permission_and_is_audited(django_user_model, source):
    data = {"action": "rotate_keys", "_selected_action": [str(source.source.pk)]}

    denied = client_for(django_user_model, COMPLIANCE_OFFICER).post("/admin/ingest/source/", data)
    allowed = client_for(django_user_model, CONSENT_ADMIN).post(
        "/admin/ingest/source/", data, follow=True
    )

    assert denied.status_code == 200  # the action is not offered: nothing happens
    assert "Write key for" in allowed.content.decode()
    assert AuditEntry.objects.filter(action="ingest.source.rotate_key").count() == 1


def test_property_class_edit_takes_effect_for_ingestion(django_user_model):
    classes()
    row = (
        PropertyClass.objects.get(key="shoe_size")
        if PropertyClass.objects.filter(key="shoe_size").exists()
        else PropertyClass.objects.create(key="shoe_size", scope="traits", kind="personal")
    )
    client = client_for(django_user_model, PLATFORM_ADMIN)

    response = client.post(
        f"/admin/ingest/propertyclass/{row.pk}/change/",
        {"key": "shoe_size", "scope": "traits", "kind": "non_personal", "description": ""},
    )

    assert response.status_code == 302
    assert classes().trait_kind("shoeSize") == "non_personal"


def test_touched_customers_are_enqueued_after_commit_with_ids_only(
    post, django_capture_on_commit_callbacks, monkeypatch
):
    from cdp.ingest import tasks
    from tests.ingest.conftest import message

    sent = []
    monkeypatch.setattr(
        tasks.customers_touched, "apply_async", lambda args, **options: sent.append(args[0])
    )

    with django_capture_on_commit_callbacks(execute=True):
        post("batch", {"batch": [message(userId="t1"), message(userId="t2")]})

    assert len(sent) == 1
    assert len(sent[0]) == 2
    assert all(len(i) == 36 and i.count("-") == 4 for i in sent[0])
    assert tasks.customers_touched.run(sent[0]) == 2
