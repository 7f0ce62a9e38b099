"""Erasure: every row of the subject goes, its key is shredded, its identifiers are suppressed,
the residue scan confirms it and the certificate says so; other subjects are untouched."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.audit.selectors import audit_chain_verify
from cdp.crypto.errors import KeyDestroyedError
from cdp.crypto.models import SubjectKey
from cdp.crypto.subject_keys import cache_clear, subject_key_get
from cdp.ingest.models import Event, Suppression
from cdp.privacy.erasure import certificate_verify, erasures_replay
from cdp.privacy.models import ErasureCertificate, ErasureJournal
from cdp.privacy.subjects import residue_scan
from cdp.profiles.models import Customer, Identity
from consent.ledger import ledger_verify
from consent.models import ConsentEvent, ConsentReason, ConsentState
from tests.privacy.conftest import add_events
from tests.profiles.factories import make_customer

pytestmark = pytest.mark.django_db


def _rows_mentioning(customer_id: uuid.UUID) -> dict[str, int]:
    return {h["table"]: h["rows"] for h in residue_scan([customer_id], []).as_dict()["residue"]}


def test_erasure_deletes_everything_and_certifies_a_clean_scan(
    subject: Any, verified: Any, run: Any
) -> None:
    customer = subject(events=5, email="erase-me@example.com")
    other = subject(events=2, email="keep-me@example.com")
    access = run(verified("access", "erase-me@example.com"))
    assert access.packages.count() == 1

    request = run(verified("erasure", "erase-me@example.com"))

    assert request.status == "completed"
    assert not Customer.objects.filter(pk=customer.pk).exists()
    assert not Identity.objects.filter(customer_id=customer.pk).exists()
    assert not Event.objects.filter(customer_id=customer.pk).exists()
    assert not ConsentState.objects.filter(customer_id=customer.pk).exists()
    assert not ConsentReason.objects.filter(customer_id=customer.pk).exists()
    assert not SubjectKey.objects.filter(subject_id=customer.pk).exists()
    access.refresh_from_db()
    assert access.packages.count() == 0  # stored exports go too
    cache_clear()
    with pytest.raises(KeyDestroyedError):
        subject_key_get(customer.pk)

    cert = ErasureCertificate.objects.get(request=request)
    assert cert.clean is True
    assert cert.deleted["profiles.Customer"] == 1
    assert cert.deleted["profiles.Identity"] == 2
    assert cert.deleted["ingest.Event"] == 5
    assert cert.deleted["privacy.ExportPackage"] == 1
    assert cert.keys_shredded == 1
    assert cert.suppressions == 2  # e-mail and phone
    assert cert.scan["residue"] == []
    assert {e["table"] for e in cert.scan["exceptions"]} >= {
        "consent_consentevent",
        "ingest_suppression",
        "privacy_datasubjectrequest",
    }
    assert cert.scan["tables_scanned"] > 20
    assert certificate_verify(cert)
    assert _rows_mentioning(customer.pk) == {}

    # Others untouched; chains still verify (they hold ciphertext and ids only).
    assert Event.objects.filter(customer_id=other.pk).count() == 2
    assert Customer.objects.get(pk=other.pk).email == "keep-me@example.com"
    assert ConsentEvent.objects.filter(customer_id=customer.pk).count() == 2  # kept: Art. 7(1)
    assert audit_chain_verify().ok
    assert ledger_verify().ok
    journal = ErasureJournal.objects.get(request=request)
    assert journal.customer_ids == [customer.pk]
    assert {k for k, _ in journal.identifiers} == {"email", "phone"}


def test_profiles_merged_into_the_subject_are_erased_too(
    subject: Any, verified: Any, run: Any, source: Any
) -> None:
    survivor = subject(events=1, email="survivor@example.com")
    merged = make_customer(email="old-address@example.com")
    add_events(merged, source, 2)
    Customer.objects.filter(pk=merged.pk).update(status="merged", merged_into=survivor)
    request = run(verified("erasure", "survivor@example.com"))
    assert request.status == "completed"
    assert request.report["customers_erased"] == 2
    assert not Customer.objects.filter(pk__in=[survivor.pk, merged.pk]).exists()
    assert Suppression.objects.count() == 4


def test_residue_outside_the_exceptions_fails_the_request(
    subject: Any, verified: Any, run: Any
) -> None:
    customer = subject(email="leaky@example.com")
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE privacy_test_residue (note text)")
        cursor.execute("INSERT INTO privacy_test_residue VALUES (%s)", [f"see {customer.pk}"])
    request = run(verified("erasure", "leaky@example.com"))
    assert request.status == "failed"
    cert = ErasureCertificate.objects.get(request=request)
    assert cert.clean is False
    assert cert.scan["residue"] == [{"table": "privacy_test_residue", "column": "note", "rows": 1}]


def test_erasure_of_an_unknown_subject_still_suppresses_the_identifier(
    verified: Any, run: Any
) -> None:
    request = run(verified("erasure", "never-seen@example.com"))
    assert request.status == "completed"
    assert request.report["subject_found"] is False
    assert Suppression.objects.filter(kind="email").count() == 1


def test_delete_only_does_not_suppress(subject: Any, verified: Any, run: Any) -> None:
    subject(email="delete-only@example.com")
    request = run(verified("erasure", "delete-only@example.com", suppress=False))
    assert request.status == "completed"
    assert not Suppression.objects.exists()


def test_replay_erases_a_subject_restored_from_a_backup(
    subject: Any, verified: Any, run: Any
) -> None:
    customer = subject(email="restored@example.com")
    run(verified("erasure", "restored@example.com"))
    # A restore brings the profile back (same e-mail, a new row) and loses the suppression list.
    Suppression.objects.all().delete()
    back = make_customer(email="restored@example.com")
    assert back.pk != customer.pk
    report = erasures_replay()
    assert report.customers_erased == 1
    assert not Customer.objects.filter(pk=back.pk).exists()
    assert Suppression.objects.filter(kind="email").count() == 1
    assert erasures_replay().customers_erased == 0  # idempotent


def _snapshot(customer_id: uuid.UUID) -> tuple[Any, ...]:
    c = Customer.objects.get(pk=customer_id)
    return (
        c.email,
        c.first_name,
        c.status,
        sorted(Identity.objects.filter(customer_id=customer_id).values_list("kind", flat=True)),
        Event.objects.filter(customer_id=customer_id).count(),
        sorted(
            e.payload["properties"]["note"] for e in Event.objects.filter(customer_id=customer_id)
        ),
        ConsentEvent.objects.filter(customer_id=customer_id).count(),
    )


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    population=st.lists(
        st.tuples(st.integers(0, 4), st.booleans(), st.sampled_from(["GB", "US", "JP"])),
        min_size=2,
        max_size=5,
    ),
    victim=st.integers(0, 4),
    merged=st.booleans(),
)
def test_property_erasure_leaves_no_residue_and_others_unchanged(
    purposes: None, source: Any, run: Any, verified: Any, population: Any, victim: int, merged: bool
) -> None:
    from consent.services import consent_record

    customers = []
    for events, consents, country in population:
        c = make_customer(country=country, email=f"p-{uuid.uuid4().hex[:10]}@example.com")
        add_events(c, source, events)
        if consents:
            consent_record(
                customer=c,
                purpose_code="profiling",
                granted=True,
                channel="admin",
                method="form",
                actor="x",
            )
        customers.append(c)
    target = customers[victim % len(customers)]
    erased = [target.pk]
    if merged and len(customers) > 2:
        extra = customers[(victim + 1) % len(customers)]
        Customer.objects.filter(pk=extra.pk).update(status="merged", merged_into=target)
        erased.append(extra.pk)
    others = [c.pk for c in customers if c.pk not in erased]
    before = {pk: _snapshot(pk) for pk in others}

    request = run(verified("erasure", str(target.pk), kind="customer_id"))

    assert request.status == "completed", request.report
    for pk in erased:
        assert _rows_mentioning(pk) == {}
        assert not SubjectKey.objects.filter(subject_id=pk).exists()
    assert {pk: _snapshot(pk) for pk in others} == before


def test_pending_webhook_notices_lose_the_erased_subject(
    subject: Any, verified: Any, run: Any
) -> None:
    """A notice not yet delivered holds customer ids without a foreign key: erasure scrubs them
    (registry.erasure_scrubber), so the scan stays clean and the partner never gets the id."""
    from segmentation.segments.models import DeliveryStatus, WebhookDelivery
    from segmentation.segments.services import webhook_subscription_create
    from tests.segmentation.segments.conftest import segment

    customer = subject(events=1, email="notice@example.com")
    other = make_customer()
    subscription, _ = webhook_subscription_create(
        segment=segment({"field": "country", "op": "eq", "value": "GB"}),
        url="https://partner.example/hook",
        events=["enter", "leave"],
        actor="test",
    )
    both = WebhookDelivery.objects.create(
        subscription=subscription, event="enter", customer_ids=[str(customer.pk), str(other.pk)]
    )
    alone = WebhookDelivery.objects.create(
        subscription=subscription, event="leave", customer_ids=[str(customer.pk)], count=1
    )
    third = make_customer()
    retrying = WebhookDelivery.objects.create(
        subscription=subscription,
        event="enter",
        customer_ids=[str(other.pk), str(customer.pk), str(third.pk)],
        count=3,
        status=DeliveryStatus.RETRYING,
        last_error="HTTP 503",
    )
    untouched = WebhookDelivery.objects.create(
        subscription=subscription, event="enter", customer_ids=[str(other.pk)], count=1
    )

    request = run(verified("erasure", "notice@example.com"))

    assert request.status == "completed"
    assert ErasureCertificate.objects.get(request=request).clean is True
    both.refresh_from_db()
    alone.refresh_from_db()
    assert (both.customer_ids, both.count) == ([str(other.pk)], 1)
    assert (alone.customer_ids, alone.status) == ([], DeliveryStatus.FAILED)
    assert "erased" in alone.last_error
    retrying.refresh_from_db()
    assert retrying.customer_ids == [str(other.pk), str(third.pk)]  # order kept
    assert (retrying.count, retrying.status, retrying.last_error) == (
        2,
        DeliveryStatus.RETRYING,
        "HTTP 503",
    )
    untouched.refresh_from_db()
    assert (untouched.customer_ids, untouched.status) == ([str(other.pk)], DeliveryStatus.PENDING)
