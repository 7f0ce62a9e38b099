"""Test support: emptying the append-only consent ledger (and the audit log) between
transactional tests, whose flush would otherwise be refused by the TRUNCATE guard."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from cdp.audit.testing import audit_log_clear_for_tests


def consent_ledger_clear_for_tests(*, using: str = DEFAULT_DB_ALIAS) -> None:
    """Empty the ledger with its guard suspended, in one transaction. Test databases only."""
    connection = connections[using]
    name = connection.settings_dict["NAME"] or ""
    if not name.startswith("test_"):
        raise RuntimeError(f"refusing to clear the consent ledger of non-test database {name!r}")
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE consent_consentevent DISABLE TRIGGER consent_consentevent_no_truncate"
        )
        cursor.execute("TRUNCATE consent_consentevent")
        cursor.execute(
            "ALTER TABLE consent_consentevent ENABLE TRIGGER consent_consentevent_no_truncate"
        )
    audit_log_clear_for_tests(using=using)
