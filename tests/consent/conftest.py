"""Fixtures for the consent tests: purposes, customers, a tamper helper, ledger cleanup."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection

# Set at import (collection), before the session's Celery worker starts, so the worker imports
# the probe hook too. Harmless to every other test: the hook only appends to a temporary file.
os.environ.setdefault("CDP_CONSENT_HOOK_MODULES", "tests.consent.hook_probe")
os.environ.setdefault("CONSENT_HOOK_PROBE_DIR", tempfile.mkdtemp(prefix="consent-hook-probe-"))


@pytest.fixture
def make_purpose() -> Callable[..., Any]:
    """Create (or return the seeded) purpose with the given code through the service."""
    from consent.models import Purpose
    from consent.services import purpose_create

    def make(code: str, **values: Any) -> Purpose:
        existing = Purpose.objects.filter(code=code).first()
        if existing is not None and not values:
            return existing
        if existing is not None:
            raise AssertionError(f"purpose {code} exists already; use another code")
        defaults: dict[str, Any] = {
            "title": code.replace("_", " ").title(),
            "notice_text": f"We use your data for {code}.",
            "covers": [code] if code in {"analytics", "profiling", "marketing"} else [],
        }
        defaults.update(values)
        return purpose_create(code=code, actor="system", **defaults)

    return make


@pytest.fixture
def customer_in() -> Callable[..., Any]:
    """A customer of a jurisdiction (gdpr: GB, ccpa: US, other: JP) through the service."""
    from tests.profiles.factories import make_customer

    countries = {"gdpr": "GB", "ccpa": "US", "other": "JP"}

    def make(jurisdiction: str = "gdpr", **overrides: Any) -> Any:
        return make_customer(country=countries[jurisdiction], **overrides)

    return make


@pytest.fixture
def ledger_emptied_after(transactional_db: None) -> Iterator[None]:
    """For transactional tests: empty the ledger and the audit log before the flush."""
    from consent.testing import consent_ledger_clear_for_tests

    yield
    consent_ledger_clear_for_tests()


@pytest.fixture
def tamper() -> Callable[[str, list[object] | None], None]:
    """Run SQL on the ledger as a superuser would, its triggers disabled (inside the test's
    transaction, so rolled back with it)."""

    def run(sql: str, params: list[object] | None = None) -> None:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE consent_consentevent DISABLE TRIGGER ALL")
            cursor.execute(sql, params)
            cursor.execute("ALTER TABLE consent_consentevent ENABLE TRIGGER ALL")

    return run
