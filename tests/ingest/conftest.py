"""Fixtures for the tracking API tests: a source with its write key, purposes, helpers."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cdp.audit.testing import audit_log_emptied_before_flush  # noqa: F401

ANALYTICS_OK = {"consent": {"categoryPreferences": {"analytics": True}}}


@pytest.fixture(autouse=True)
def seeded(db: None) -> None:
    """Default purposes and property classes (a transactional test's flush removes them)."""
    from cdp.ingest.classification import property_classes_seed
    from consent.models import Purpose
    from consent.services import purpose_create

    property_classes_seed()
    for code in ("analytics", "sale_sharing", "marketing"):
        if not Purpose.objects.filter(code=code).exists():
            purpose_create(
                code=code,
                title=code.title(),
                notice_text=f"We use your data for {code}.",
                covers=[code],
                actor="system",
            )


@pytest.fixture
def ledger_emptied(request: pytest.FixtureRequest) -> Iterator[None]:
    """Transactional tests: empty the append-only ledger and audit log before the flush."""
    yield
    from consent.testing import consent_ledger_clear_for_tests

    consent_ledger_clear_for_tests()


@pytest.fixture
def source() -> Any:
    from cdp.ingest.services import source_create

    return source_create(name=f"web-{uuid.uuid4().hex[:6]}", actor="system")


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def message(kind: str = "track", **fields: Any) -> dict[str, Any]:
    """A message as the Python SDKs build it (explicit null for the absent id)."""
    base: dict[str, Any] = {
        "type": kind,
        "messageId": str(uuid.uuid4()),
        "userId": None,
        "anonymousId": None,
        "timestamp": "2026-11-23T10:00:00+00:00",
        "context": {"library": {"name": "test", "version": "1"}, **ANALYTICS_OK},
        "integrations": {},
    }
    if kind == "track":
        base["event"] = "Product Viewed"
        base["properties"] = {}
    base.update(fields)
    if base["userId"] is None and base["anonymousId"] is None and "noids" not in fields:
        base["anonymousId"] = f"anon-{uuid.uuid4().hex[:12]}"
    base.pop("noids", None)
    return base


@pytest.fixture
def post(client: Any, source: Any) -> Callable[..., Any]:
    """POST a body to /v1/<path> with the source's key (HTTP Basic unless told otherwise)."""

    def send(
        path: str,
        body: Any,
        *,
        key: str | None = None,
        gzipped: bool = False,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> Any:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        extra: dict[str, str] = dict(headers or {})
        if gzipped:
            data = gzip.compress(data)
            extra["Content-Encoding"] = "gzip"
        if auth:
            extra.setdefault("Authorization", basic(key or source.write_key))
        return client.post(f"/v1/{path}", data=data, content_type="application/json", headers=extra)

    return send
