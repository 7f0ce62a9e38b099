"""Recording audit entries: the chain they form and what they refuse to carry."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction

from cdp.audit.chain import GENESIS, link_hash
from cdp.audit.models import AuditEntry
from cdp.audit.selectors import audit_chain_verify
from cdp.audit.services import (
    ANONYMOUS,
    SYSTEM,
    AuditDetailsError,
    actor_for,
    actor_for_source,
    audit_record,
)

pytestmark = pytest.mark.django_db


def test_entries_link_each_to_the_previous_hash_starting_from_zero_bytes() -> None:
    # Given an empty log, when three entries are recorded
    first = audit_record(actor=SYSTEM, action="crypto.rotate_keys")
    second = audit_record(
        actor="user:1", action="customer.reveal", object_type="customer", object_id="c-1"
    )
    third = audit_record(actor="user:1", action="customer.merge", details={"rule": "email"})

    # Then they are numbered 1, 2, 3 and each links to its predecessor's hash
    rows = list(AuditEntry.objects.order_by("seq"))
    assert [row.seq for row in rows] == [1, 2, 3]
    assert bytes(rows[0].prev_hash) == GENESIS == bytes(32)
    assert bytes(rows[1].prev_hash) == bytes(rows[0].hash) == first.hash
    assert bytes(rows[2].prev_hash) == bytes(rows[1].hash) == second.hash
    assert bytes(rows[2].hash) == third.hash


def test_entry_hash_is_the_keyed_link_over_the_stored_fields() -> None:
    entry = audit_record(
        actor="user:7",
        action="consent.withdraw",
        object_type="customer",
        object_id="42",
        details={"purpose": "marketing", "count": 3},
    )

    stored = AuditEntry.objects.get(seq=entry.seq)
    expected = link_hash(
        settings.CDP_AUDIT_KEY,
        GENESIS,
        {
            "seq": 1,
            "at": stored.at,
            "actor": "user:7",
            "action": "consent.withdraw",
            "object_type": "customer",
            "object_id": "42",
            "details": {"purpose": "marketing", "count": 3},
        },
    )
    assert bytes(stored.hash) == expected


def test_details_are_stored_exactly_as_hashed_so_the_entry_verifies_after_reading_back() -> None:
    # Given details with a datetime and a UUID, which JSON has no native form for
    when = dt.datetime(2026, 11, 23, 9, 22, 34, 123456, tzinfo=dt.UTC)
    run_id = uuid.UUID("550e8400-e29b-41d4-a716-446655440000")

    entry = audit_record(
        actor=SYSTEM, action="segmentation.run", details={"when": when, "run": run_id}
    )

    # Then they are stored in their canonical text form and the chain verifies from the database
    assert AuditEntry.objects.get(seq=entry.seq).details == {
        "when": "2026-11-23T09:22:34.123456Z",
        "run": "550e8400-e29b-41d4-a716-446655440000",
    }
    report = audit_chain_verify()
    assert (report.ok, report.checked) == (True, 1)


@pytest.mark.parametrize(
    ("details", "key"),
    [
        ({"contact": "jane.doe@example.com"}, "details.contact"),
        ({"old": {"phone": "+44 20 7946 0958"}}, "details.old.phone"),
        ({"seen_from": ["10.0.0.1", "192.168.1.20"]}, "details.seen_from[0]"),
        ({"ip6": "2001:db8::1"}, "details.ip6"),
    ],
)
def test_details_with_personal_data_are_refused_naming_the_key_not_the_value(
    details: dict, key: str
) -> None:
    with pytest.raises(AuditDetailsError) as excinfo:
        audit_record(actor=SYSTEM, action="customer.update", details=details)

    assert excinfo.value.key == key
    assert str(excinfo.value) == (
        f"audit entry refused: {key} looks like personal data; record ids, not personal data"
    )
    assert AuditEntry.objects.count() == 0


def test_a_personal_data_key_in_details_is_refused_without_repeating_it() -> None:
    with pytest.raises(AuditDetailsError) as excinfo:
        audit_record(actor=SYSTEM, action="x.y", details={"by_email": {"jane@example.com": 1}})

    assert "jane" not in str(excinfo.value)
    assert excinfo.value.key == "details.by_email"
    assert AuditEntry.objects.count() == 0


def test_an_object_id_that_is_an_email_address_is_refused() -> None:
    with pytest.raises(AuditDetailsError, match="object_id looks like personal data"):
        audit_record(actor=SYSTEM, action="customer.reveal", object_id="jane@example.com")

    assert AuditEntry.objects.count() == 0


def test_ordinary_details_pass_the_personal_data_check() -> None:
    details = {
        "source": "source:550e8400-e29b-41d4-a716-446655440000",
        "at": "2026-11-23 09:22:34",
        "rows": 1_000_000,
        "fields": ["email", "phone"],
    }

    entry = audit_record(actor=SYSTEM, action="ingest.import_done", details=details)

    assert AuditEntry.objects.get(seq=entry.seq).details == details


def test_a_failure_to_audit_rolls_back_the_callers_action() -> None:
    # Given a caller that changes state and audits in one transaction
    with pytest.raises(AuditDetailsError):
        with transaction.atomic():
            User.objects.create(username="operator")
            audit_record(actor=SYSTEM, action="user.create", details={"email": "op@example.com"})

    # Then the action did not happen either
    assert User.objects.filter(username="operator").exists() is False
    assert AuditEntry.objects.count() == 0


def test_an_entry_rolled_back_with_its_callers_transaction_leaves_no_gap() -> None:
    audit_record(actor=SYSTEM, action="a.first")
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(actor=SYSTEM, action="a.abandoned")
        raise RuntimeError("caller failed after auditing")

    audit_record(actor=SYSTEM, action="a.second")

    assert list(AuditEntry.objects.order_by("seq").values_list("seq", "action")) == [
        (1, "a.first"),
        (2, "a.second"),
    ]
    assert audit_chain_verify().ok is True


def test_actor_for_names_authenticated_users_by_pk_and_everyone_else_anonymous() -> None:
    user = User.objects.create(username="analyst")

    assert actor_for(user) == f"user:{user.pk}"
    assert actor_for(AnonymousUser()) == ANONYMOUS == "anonymous"
    assert actor_for(None) == "anonymous"
    assert actor_for_source("550e8400-e29b-41d4-a716-446655440000") == (
        "source:550e8400-e29b-41d4-a716-446655440000"
    )


def test_recording_costs_a_constant_number_of_queries(django_assert_num_queries) -> None:
    audit_record(actor=SYSTEM, action="warm.up")

    # advisory lock, head SELECT, INSERT (inside the caller's transaction, no savepoint)
    with django_assert_num_queries(3):
        audit_record(actor=SYSTEM, action="measured")
