"""Concurrent writers queue on the chain's advisory lock instead of forking the chain."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from cdp.audit.models import AuditEntry
from cdp.audit.selectors import audit_chain_verify
from cdp.audit.services import audit_record

WRITERS = 2
ENTRIES_EACH = 50


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_leave_one_unbroken_chain() -> None:
    # Given two threads, each with its own database connection, released at the same moment
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            start.wait()
            for n in range(ENTRIES_EACH):
                audit_record(actor=f"user:{writer}", action="test.concurrent", object_id=str(n))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    # When each writes 50 entries, committing each one
    threads = [threading.Thread(target=write, args=(writer,)) for writer in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Then there is one chain of 100 with consecutive numbers, every entry of both writers in it
    assert errors == []
    report = audit_chain_verify()
    assert (report.ok, report.checked, report.head_seq) == (True, 100, 100)
    assert list(AuditEntry.objects.order_by("seq").values_list("seq", flat=True)) == list(
        range(1, 101)
    )
    for writer in range(WRITERS):
        ids = AuditEntry.objects.filter(actor=f"user:{writer}").values_list("object_id", flat=True)
        assert sorted(ids, key=int) == [str(n) for n in range(ENTRIES_EACH)]


def test_a_transactional_test_that_wrote_entries_is_flushed_afterwards(transactional_db) -> None:
    # The autouse fixture from cdp.audit.testing empties the log before pytest-django's flush,
    # which the append-only guard would otherwise refuse; a teardown error would fail this test.
    audit_record(actor="user:1", action="test.flush")

    assert AuditEntry.objects.count() == 1
