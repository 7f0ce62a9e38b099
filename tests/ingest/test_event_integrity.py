"""Event.customer has no per-row foreign-key check: writers lock their customers once per
batch, erasure locks them first, and the database refuses to delete a customer with events."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction

from cdp.ingest.consent_context import batch_consent_read
from cdp.ingest.models import Event
from cdp.ingest.pipeline import customers_lock_for_events
from cdp.privacy.erasure import erase_customers
from cdp.profiles.models import Customer

pytestmark = pytest.mark.django_db


def insert_event(source_id: uuid.UUID, customer_id: uuid.UUID) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ingest_event (id, source_id, message_id, customer_id, type, name, "
            '"timestamp", received_at, clamped, currency, product_id, properties, payload) '
            "VALUES (%s, %s, %s, %s, 'track', 'x', now(), now(), false, '', '', '{}', '\\x00')",
            [uuid.uuid4(), source_id, uuid.uuid4().hex, customer_id],
        )


def params() -> dict:
    settings = connection.settings_dict
    return {
        "dbname": settings["NAME"],
        "user": settings["USER"],
        "host": settings["HOST"],
        "port": settings["PORT"] or 5432,
        "password": settings["PASSWORD"] or None,
    }


def wait_until_blocked(thread: threading.Thread, statement: str) -> None:
    with psycopg.connect(**params(), autocommit=True) as watcher:
        for _ in range(500):
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE %s",
                [statement + "%"],
            ).fetchone()
            if row[0]:
                return
            thread.join(0.02)
    pytest.fail(f"{statement!r} never waited on a lock")


def test_the_database_refuses_to_delete_a_customer_with_events(source):
    customer = Customer.objects.create()
    insert_event(source.source.id, customer.id)

    with pytest.raises(IntegrityError, match="still has events"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM profiles_customer WHERE id = %s", [customer.id])

    customer.delete()  # the ORM deletes the events first
    assert not Event.objects.exists()


def test_the_lock_returns_only_existing_customers(source):
    kept, gone = Customer.objects.create(), uuid.uuid4()

    assert customers_lock_for_events([kept.id, gone]) == {kept.id}
    assert set(batch_consent_read([kept.id, gone]).customers) == {kept.id}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("lock", ["consent_read", "writer_lock"])
def test_an_erasure_racing_a_batch_waits_and_then_deletes_its_events(source, lock):
    """Without the batch's lock, the erasure's DELETE of events would not see the batch's
    uncommitted rows and the events would outlive their customer."""
    customer = Customer.objects.create()
    failures: list[BaseException] = []

    def erase() -> None:
        try:
            with transaction.atomic():
                erase_customers([customer.id], [], suppress=False)
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)
        finally:
            connection.close()

    with transaction.atomic():
        if lock == "consent_read":
            batch_consent_read([customer.id])
        else:
            customers_lock_for_events([customer.id])
        insert_event(source.source.id, customer.id)
        eraser = threading.Thread(target=erase)
        eraser.start()
        wait_until_blocked(eraser, "SELECT count(*) FROM (SELECT 1 FROM profiles_customer")
    eraser.join(30)

    assert failures == []
    assert not Customer.objects.filter(pk=customer.pk).exists()
    assert not Event.objects.filter(customer_id=customer.id).exists()


@pytest.mark.django_db(transaction=True)
def test_a_batch_after_an_erasure_began_finds_the_customer_gone(source):
    customer = Customer.objects.create()
    found: list[set] = []

    def batch() -> None:
        try:
            with transaction.atomic():
                found.append(set(batch_consent_read([customer.id]).customers))
        finally:
            connection.close()

    with transaction.atomic():
        erase_customers([customer.id], [], suppress=False)
        writer = threading.Thread(target=batch)
        writer.start()
        wait_until_blocked(writer, "\nSELECT u.n, c.status")
    writer.join(30)

    assert found == [set()]
