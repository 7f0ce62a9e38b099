"""The database refuses to change or remove audit entries, whoever asks."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from cdp.audit.models import AuditEntry
from cdp.audit.services import SYSTEM, audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry() -> AuditEntry:
    return audit_record(actor=SYSTEM, action="customer.reveal", object_id="c-1")


@pytest.mark.parametrize(
    ("sql", "operation"),
    [
        ("UPDATE audit_auditentry SET action = 'customer.nothing' WHERE seq = %s", "UPDATE"),
        ("DELETE FROM audit_auditentry WHERE seq = %s", "DELETE"),
        ("TRUNCATE audit_auditentry", "TRUNCATE"),
    ],
)
def test_database_refuses_to_change_or_remove_entries(
    entry: AuditEntry, sql: str, operation: str
) -> None:
    # psycopg raises PL/pgSQL's RAISE as ProgrammingError; any DatabaseError aborts the caller.
    with pytest.raises(DatabaseError) as excinfo:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [entry.seq] if "%s" in sql else None)

    assert f"audit log is append-only: {operation} on audit_auditentry refused" in str(
        excinfo.value
    )
    assert list(AuditEntry.objects.values_list("seq", "action")) == [(1, "customer.reveal")]


def test_orm_update_and_delete_are_refused_too(entry: AuditEntry) -> None:
    with pytest.raises(DatabaseError, match="audit log is append-only"):
        with transaction.atomic():
            AuditEntry.objects.filter(seq=entry.seq).update(actor="user:9")
    with pytest.raises(DatabaseError, match="audit log is append-only"):
        with transaction.atomic():
            AuditEntry.objects.filter(seq=entry.seq).delete()

    assert AuditEntry.objects.get(seq=entry.seq).actor == SYSTEM


def test_truncating_an_empty_log_is_allowed_because_it_destroys_nothing() -> None:
    # Django's flush between transactional tests truncates every table.
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE audit_auditentry")

    assert AuditEntry.objects.count() == 0
