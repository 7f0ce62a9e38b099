"""The audit log in the admin: viewable by permitted staff, changeable by nobody."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from cdp.audit.models import AuditEntry
from cdp.audit.services import SYSTEM, audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry() -> AuditEntry:
    return audit_record(
        actor="user:1", action="customer.reveal", object_type="customer", object_id="c-42"
    )


def urls(entry: AuditEntry) -> dict[str, str]:
    return {
        "changelist": reverse("admin:audit_auditentry_changelist"),
        "add": reverse("admin:audit_auditentry_add"),
        "change": reverse("admin:audit_auditentry_change", args=[entry.seq]),
        "delete": reverse("admin:audit_auditentry_delete", args=[entry.seq]),
    }


def test_superuser_can_view_the_changelist(admin_client, entry) -> None:
    response = admin_client.get(urls(entry)["changelist"])

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [entry]
    assert b"customer.reveal" in response.content


def test_superuser_sees_an_entry_read_only_with_its_hashes_in_hex(admin_client, entry) -> None:
    response = admin_client.get(urls(entry)["change"])

    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    assert bytes(entry.hash).hex().encode() in response.content
    assert (bytes(32).hex()).encode() in response.content  # the genesis prev_hash
    assert b'name="_save"' not in response.content


@pytest.mark.parametrize("method", ["get", "post"])
def test_superuser_is_forbidden_to_add(admin_client, entry, method: str) -> None:
    response = getattr(admin_client, method)(urls(entry)["add"], {"actor": "user:1"})

    assert response.status_code == 403
    assert AuditEntry.objects.count() == 1


def test_superuser_is_forbidden_to_change(admin_client, entry) -> None:
    response = admin_client.post(urls(entry)["change"], {"actor": "user:2", "action": "x.y"})

    assert response.status_code == 403
    assert AuditEntry.objects.get(seq=entry.seq).actor == "user:1"


@pytest.mark.parametrize("method", ["get", "post"])
def test_superuser_is_forbidden_to_delete(admin_client, entry, method: str) -> None:
    response = getattr(admin_client, method)(urls(entry)["delete"], {"post": "yes"})

    assert response.status_code == 403
    assert AuditEntry.objects.count() == 1


def test_the_changelist_offers_no_bulk_actions(admin_client, entry) -> None:
    response = admin_client.get(urls(entry)["changelist"])

    assert response.context["action_form"] is None


def test_search_matches_exact_object_id_or_actor(admin_client, entry) -> None:
    audit_record(actor=SYSTEM, action="crypto.rotate_keys")
    changelist = urls(entry)["changelist"]

    by_object = admin_client.get(changelist, {"q": "c-42"}).context["cl"].result_list
    by_actor = admin_client.get(changelist, {"q": "system"}).context["cl"].result_list
    partial = admin_client.get(changelist, {"q": "c-4"}).context["cl"].result_list

    assert [row.action for row in by_object] == ["customer.reveal"]
    assert [row.action for row in by_actor] == ["crypto.rotate_keys"]
    assert list(partial) == []


@pytest.mark.parametrize("page", ["changelist", "add", "change", "delete"])
def test_anonymous_is_redirected_to_login(client, entry, page: str) -> None:
    url = urls(entry)[page]

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={url}"


@pytest.fixture
def staff_client(client):
    def login(*permissions: str):
        user = User.objects.create_user("staff", password="x" * 16, is_staff=True)
        for codename in permissions:
            user.user_permissions.add(Permission.objects.get(codename=codename))
        client.force_login(user)
        return client

    return login


def test_staff_without_the_view_permission_is_forbidden(staff_client, entry) -> None:
    response = staff_client().get(urls(entry)["changelist"])

    assert response.status_code == 403


def test_staff_with_the_view_permission_can_read_but_not_change(staff_client, entry) -> None:
    client = staff_client("view_auditentry")

    assert client.get(urls(entry)["changelist"]).status_code == 200
    assert client.get(urls(entry)["change"]).status_code == 200
    assert client.post(urls(entry)["change"], {"actor": "user:2"}).status_code == 403
    assert client.get(urls(entry)["delete"]).status_code == 403


def test_only_the_view_permission_exists_for_audit_entries() -> None:
    codenames = Permission.objects.filter(content_type__app_label="audit").values_list(
        "codename", flat=True
    )

    assert sorted(codenames) == ["view_auditentry"]
