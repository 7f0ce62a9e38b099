"""Fixtures for the privacy tests: purposes, a source, a subject with data across the tables."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

PURPOSES = {
    "analytics": ["analytics"],
    "marketing": ["marketing"],
    "profiling": ["profiling"],
    "sale_sharing": ["sale_sharing"],
}


@pytest.fixture
def purposes(db: None) -> None:
    from consent.models import Purpose
    from consent.services import purpose_create

    for code, covers in PURPOSES.items():
        if not Purpose.objects.filter(code=code).exists():
            purpose_create(
                code=code,
                title=code.replace("_", " ").title(),
                notice_text=f"We use your data for {code}.",
                covers=covers,
                actor="system",
            )


@pytest.fixture
def source(db: None) -> Any:
    from cdp.ingest.services import source_create

    return source_create(name=f"shop-{uuid.uuid4().hex[:6]}", actor="system").source


def add_events(customer: Any, source: Any, count: int, *, name: str = "Order Completed") -> None:
    """Events as the pipeline stores them (the payload encrypted under the customer's key)."""
    from cdp.ingest.models import Event

    now = timezone.now()
    Event.objects.bulk_create(
        [
            Event(
                id=uuid.uuid4(),
                source=source,
                message_id=f"m-{uuid.uuid4().hex}",
                customer_id=customer.id,
                type="track",
                name=name,
                timestamp=now - dt.timedelta(minutes=i),
                received_at=now,
                amount=10 + i,
                currency="GBP",
                product_id=f"sku-{i}",
                properties={"order_id": f"o-{i}", "quantity": 1},
                payload={"event": name, "properties": {"note": f"secret-{customer.id}-{i}"}},
            )
            for i in range(count)
        ]
    )


@pytest.fixture
def subject(purposes: None, source: Any) -> Callable[..., Any]:
    """A customer with identities, events and consent decisions (granted, then withdrawn)."""
    from consent.services import consent_record
    from tests.profiles.factories import make_customer

    def make(events: int = 3, **overrides: Any) -> Any:
        customer = make_customer(**overrides)
        add_events(customer, source, events)
        consent_record(
            customer=customer,
            purpose_code="marketing",
            granted=True,
            channel="admin",
            method="web-form",
            actor="system",
        )
        consent_record(
            customer=customer,
            purpose_code="marketing",
            granted=False,
            channel="admin",
            method="web-form",
            actor="system",
            reason="Subject changed their mind",
        )
        return customer

    return make


@pytest.fixture
def run() -> Callable[[Any], Any]:
    """Carry out a request in this process (the worker's code path, minus the broker)."""
    from cdp.privacy.services import dsr_execute

    def execute(request: Any) -> Any:
        return dsr_execute(request_id=request.id)

    return execute


@pytest.fixture
def verified() -> Callable[..., Any]:
    """Create and verify a request for a subject identified by e-mail (or any kind)."""
    from cdp.privacy.services import dsr_create, dsr_verify

    def make(type: str, value: str, kind: str = "email", **kwargs: Any) -> Any:
        request = dsr_create(
            type=type, subject_kind=kind, subject_value=value, actor="user:1", **kwargs
        )
        dsr_verify(request=request, method="document", actor="user:1", evidence_note="ID seen")
        return request

    return make
