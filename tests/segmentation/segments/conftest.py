"""Fixtures for rule segments: purposes, a source, customers with consent, events, features."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

_messages = itertools.count(1)


@pytest.fixture(autouse=True)
def purposes(db: None) -> None:
    """The default purposes (a transactional test's flush removes the migration's rows)."""
    from consent.models import Purpose
    from consent.services import purpose_create

    for code in ("analytics", "profiling", "marketing", "personalization", "sale_sharing"):
        if not Purpose.objects.filter(code=code).exists():
            purpose_create(
                code=code,
                title=code.title(),
                notice_text=f"We use your data for {code}.",
                covers=[code],
                actor="system",
            )


@pytest.fixture
def ledger_emptied() -> Iterator[None]:
    """Transactional tests: empty the append-only ledger and audit log before the flush."""
    yield
    from consent.testing import consent_ledger_clear_for_tests

    consent_ledger_clear_for_tests()


@pytest.fixture
def source() -> Any:
    from cdp.ingest.services import source_create

    return source_create(name=f"seg-{uuid.uuid4().hex[:6]}", actor="system")


def customer(*, country: str = "DE", attributes: dict[str, Any] | None = None) -> Any:
    from cdp.profiles.services import customer_create

    made = customer_create(actor="test", country=country)
    if attributes:
        type(made).objects.filter(pk=made.pk).update(attributes=attributes)
        made.attributes = attributes
    return made


def grant(customers: list[Any], purpose: str = "marketing", *, granted: bool = True) -> None:
    from consent.services import consent_record_many
    from consent.services.recording import ConsentDecision

    consent_record_many(
        decisions=[
            ConsentDecision(
                customer=c, purpose_code=purpose, granted=granted, channel="admin", method="test"
            )
            for c in customers
        ],
        actor="test",
    )


def event(
    source: Any,
    customer_id: uuid.UUID,
    name: str,
    at: dt.datetime,
    *,
    amount: Decimal | None = None,
    **properties: Any,
) -> Any:
    from cdp.ingest.models import Event

    return Event.objects.create(
        id=uuid.uuid4(),
        source=getattr(source, "source", source),  # an IssuedKey or a Source
        message_id=f"m-{next(_messages)}",
        customer_id=customer_id,
        type="track",
        name=name,
        timestamp=at,
        received_at=at,
        amount=amount,
        properties=properties,
        payload={},
    )


def features(customer_id: uuid.UUID, **values: Any) -> Any:
    from django.utils import timezone

    from segmentation.models import CustomerFeatures

    now = timezone.now()
    return CustomerFeatures.objects.create(
        customer_id=customer_id, as_of=now, computed_at=now, **values
    )


def segment(condition: Any, *, purpose: str = "marketing", **fields: Any) -> Any:
    from segmentation.segments.models import Segment
    from segmentation.segments.services import segment_save

    values = {"name": f"s-{uuid.uuid4().hex[:8]}", "purpose_id": purpose, "condition": condition}
    values.update(fields)
    return segment_save(segment=Segment(**values), actor="test")
