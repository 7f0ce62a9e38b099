"""Test support: emptying the append-only audit log between transactional tests.

Django's TransactionTestCase (pytest-django's `transactional_db`, `django_db(transaction=True)`,
`live_server`) flushes every table with TRUNCATE after each test, and the audit log refuses
TRUNCATE while it holds rows. Importing `audit_log_emptied_before_flush` into a conftest makes
every such test empty the log first:

    from cdp.audit.testing import audit_log_emptied_before_flush  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
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


def _is_transactional(request: pytest.FixtureRequest) -> bool:
    marker = request.node.get_closest_marker("django_db")
    return (
        "transactional_db" in request.fixturenames
        or "live_server" in request.fixturenames
        or bool(marker and marker.kwargs.get("transaction"))
    )


@pytest.fixture(autouse=True)
def audit_log_emptied_before_flush(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a transactional test, empty the audit log so pytest-django's flush can run.

    Requesting `transactional_db` here makes it set up before this fixture, so this fixture's
    teardown runs before the flush.
    """
    if not _is_transactional(request):
        yield
        return
    request.getfixturevalue("transactional_db")
    yield
    audit_log_clear_for_tests()
