"""Fixtures for the audit log tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection

from cdp.audit.testing import audit_log_emptied_before_flush  # noqa: F401


@pytest.fixture
def tamper() -> Callable[[str, list[object] | None], None]:
    """Run SQL against the audit table as a superuser would, with its triggers disabled.

    The ALTER TABLE runs inside the test's transaction and is rolled back with it.
    """

    def run(sql: str, params: list[object] | None = None) -> None:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_auditentry DISABLE TRIGGER ALL")
            cursor.execute(sql, params)
            cursor.execute("ALTER TABLE audit_auditentry ENABLE TRIGGER ALL")

    return run
