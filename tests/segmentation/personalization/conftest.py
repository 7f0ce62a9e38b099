"""Fixtures for personalization: purposes, customers with consent and a purchase history."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest

from tests.segmentation.segments.conftest import (  # noqa: F401  (fixtures re-exported)
    customer,
    grant,
    ledger_emptied,
    purposes,
    source,
)

AS_OF = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
PRODUCTS_A = [f"A{n}" for n in range(6)]
PRODUCTS_B = [f"B{n}" for n in range(6)]


def history(src: Any, who: Any, *, loyal: bool, index: int) -> None:
    """Orders every 10 days over 200 days; a lapsing customer stops 90 days before AS_OF. Taste
    group by index parity; each order is two lines with an order id (one bulk insert)."""
    products = PRODUCTS_A if index % 2 == 0 else PRODUCTS_B
    last = 0 if loyal else 90
    lines = []
    for n, days_ago in enumerate(range(200, last, -10)):
        at = AS_OF - dt.timedelta(days=days_ago, hours=index % 7)
        for line in range(2):
            lines.append((at, products[(n + line + index) % len(products)], f"o-{index}-{n}"))
    order_lines(src, who, lines)


def order_lines(src: Any, who: Any, lines: list[tuple[dt.datetime, str, str]]) -> None:
    """ "Order Completed" events as the pipeline stores them: amount, product_id, order_id."""
    from cdp.ingest.models import Event

    Event.objects.bulk_create(
        Event(
            id=uuid.uuid4(),
            source=getattr(src, "source", src),
            message_id=f"p-{uuid.uuid4().hex}",
            customer_id=who.pk,
            type="track",
            name="Order Completed",
            timestamp=at,
            received_at=at,
            amount=Decimal("12.50"),
            currency="EUR",
            product_id=product,
            properties={"order_id": order_id, "quantity": 1, "price": "12.50"},
            payload={},
        )
        for at, product, order_id in lines
    )


@pytest.fixture
def shop(source: Any) -> dict[str, Any]:  # noqa: F811  (the fixture)
    """24 consented customers (profiling + personalization) with histories, half lapsing; one
    customer with history but no consent; one consented newcomer with no history."""
    consented = [customer() for _ in range(24)]
    for i, c in enumerate(consented):
        history(source, c, loyal=i % 2 == 0, index=i)
    outsider = customer()
    history(source, outsider, loyal=True, index=99)
    newcomer = customer()
    grant([*consented, newcomer], "profiling")
    grant([*consented, newcomer], "personalization")
    return {
        "source": source,
        "consented": consented,
        "outsider": outsider,
        "newcomer": newcomer,
    }
