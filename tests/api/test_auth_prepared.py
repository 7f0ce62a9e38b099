"""Prepared statements of the API's per-request reads (`cdp.api.prepared`)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings

from cdp.api.authentication import token_lookup
from cdp.api.models import token_hash
from cdp.api.prepared import prepared_fetchone
from cdp.api.services import api_token_create

pytestmark = pytest.mark.django_db


def prepared_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {name for (name,) in cursor.fetchall()}


def test_placeholders_become_parameters_and_percent_signs_stay():
    row = prepared_fetchone("default", "test_percent", "SELECT %s::int %% 3, '%%', %s", [7, "x"])

    assert row == (1, "%", "x")


def test_prepared_once_per_session_then_executed():
    _, token = api_token_create(name="crm", scopes=["consent:read"], actor="system")
    with CaptureQueriesContext(connection) as first:
        assert token_lookup(token_hash(token)) is not None
    with CaptureQueriesContext(connection) as second:
        assert token_lookup(token_hash(token)) is not None

    statements = [q["sql"] for q in first.captured_queries]
    assert len(statements) in (1, 2)  # PREPARE unless an earlier test in this session did
    assert statements[-1].startswith("EXECUTE cdp_api_token_")
    assert [q["sql"].split("(")[0] for q in second.captured_queries] == [
        statements[-1].split("(")[0]
    ]
    assert any(name.startswith("cdp_api_token_") for name in prepared_names())


def test_a_rollback_keeps_the_prepared_statement():
    with pytest.raises(RuntimeError), transaction.atomic():
        prepared_fetchone("default", "test_rollback", "SELECT %s::int + 1", [1])
        raise RuntimeError("roll back")

    assert prepared_fetchone("default", "test_rollback", "SELECT %s::int + 1", [2]) == (3,)


def test_switched_off_runs_the_same_sql_unprepared():
    with override_settings(CDP_API_PREPARED_STATEMENTS=False):
        with CaptureQueriesContext(connection) as queries:
            row = prepared_fetchone("default", "test_off", "SELECT %s::int * 2", [21])

    assert row == (42,)
    assert [q["sql"] for q in queries.captured_queries] == ["SELECT 21::int * 2"]
    assert not any(name.startswith("cdp_test_off_") for name in prepared_names())


def test_parameter_count_and_label_are_checked():
    with pytest.raises(ValueError, match="2 placeholders"):
        prepared_fetchone("default", "test_count", "SELECT %s, %s", [1])
    with pytest.raises(ValueError, match="label"):
        prepared_fetchone("default", "Bad-Label", "SELECT 1", [])
