"""Test support: emptying the append-only audit log between transactional tests.

Django's TransactionTestCase (pytest-django's `transactional_db`) flushes every table with
TRUNCATE after each test; the audit log refuses TRUNCATE while it holds rows. Call
`audit_log_clear_for_tests()` after such a test writes audit entries and before the flush.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections, transaction


def audit_log_clear_for_tests(*, using: str = DEFAULT_DB_ALIAS) -> None:
    """Empty the audit log with its guard suspended, in one transaction. Test databases only."""
    connection = connections[using]
    name = connection.settings_dict["NAME"] or ""
    if not name.startswith("test_"):
        raise RuntimeError(f"refusing to clear the audit log of non-test database {name!r}")
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditentry DISABLE TRIGGER audit_auditentry_no_truncate")
        cursor.execute("TRUNCATE audit_auditentry")
        cursor.execute("ALTER TABLE audit_auditentry ENABLE TRIGGER audit_auditentry_no_truncate")
