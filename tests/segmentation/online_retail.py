"""A small loader of UCI Online Retail lines into Event rows, per the cross-helper contract.

One "Order Completed" event per invoice line ("Order Refunded" for a cancellation invoice "C..."
or a negative quantity); timestamp = InvoiceDate (UTC); amount = quantity x unit price (signed);
properties = order_id, quantity, price, non_product (stock codes that do not start with a digit:
postage, discounts, fees). Customers are created with no personal data and country GB.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "uci_online_retail" / "online_retail.csv.gz"


@dataclass(frozen=True)
class Line:
    invoice: str
    stock_code: str
    quantity: int
    when: dt.datetime
    price: Decimal
    customer: int


def read_lines(keep: Callable[[int], bool]) -> list[Line]:
    """The lines with a CustomerID for which `keep(customer_id)` is true."""
    out = []
    with gzip.open(DATA, "rt", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if not row["CustomerID"]:
                continue
            customer = int(float(row["CustomerID"]))
            if not keep(customer):
                continue
            out.append(
                Line(
                    invoice=row["InvoiceNo"],
                    stock_code=row["StockCode"],
                    quantity=int(row["Quantity"]),
                    when=dt.datetime.fromisoformat(row["InvoiceDate"]).replace(tzinfo=dt.UTC),
                    price=Decimal(row["UnitPrice"]),
                    customer=customer,
                )
            )
    return out


def is_refund(line: Line) -> bool:
    return line.invoice.startswith("C") or line.quantity < 0


def is_non_product(line: Line) -> bool:
    return not line.stock_code[:1].isdigit()


def load_events(lines: list[Line]) -> dict[int, uuid.UUID]:
    """Create one customer per CustomerID and one Event per line; returns CustomerID -> id."""
    from cdp.ingest.models import Event, Source
    from cdp.profiles.services import customer_create

    source, _ = Source.objects.get_or_create(
        name="online-retail-test", defaults={"key_hash": uuid.uuid4().bytes * 2, "kind": "import"}
    )
    customers: dict[int, uuid.UUID] = {}
    for number in sorted({line.customer for line in lines}):
        customers[number] = customer_create(actor="test", country="GB").id
    received = dt.datetime.now(dt.UTC)
    events = []
    for n, line in enumerate(lines):
        events.append(
            Event(
                id=uuid.uuid4(),
                source=source,
                message_id=f"line-{n}",
                customer_id=customers[line.customer],
                type="track",
                name="Order Refunded" if is_refund(line) else "Order Completed",
                timestamp=line.when,
                received_at=received,
                amount=line.quantity * line.price,
                currency="GBP",
                product_id=line.stock_code,
                properties={
                    "order_id": line.invoice,
                    "quantity": line.quantity,
                    "price": str(line.price),
                    "non_product": is_non_product(line),
                },
                payload={"line": n},
            )
        )
    Event.objects.bulk_create(events, batch_size=2000)
    return customers


def grant_profiling(customer_ids: list[uuid.UUID], *, granted: bool = True) -> None:
    from cdp.profiles.models import Customer
    from consent.models import Purpose
    from consent.services import consent_record_many, purpose_create
    from consent.services.recording import ConsentDecision

    if not Purpose.objects.filter(code="profiling").exists():  # a transactional flush ran
        purpose_create(
            code="profiling",
            actor="system",
            title="Profiling",
            notice_text="We analyse your purchases to group customers with similar interests.",
            covers=["profiling"],
        )

    customers = Customer.objects.filter(id__in=customer_ids).only("id", "status", "jurisdiction")
    consent_record_many(
        decisions=[
            ConsentDecision(
                customer=c,
                purpose_code="profiling",
                granted=granted,
                channel="admin",
                method="web-form",
            )
            for c in customers
        ],
        actor="test",
    )


def clustered_run(*, modulo: int = 40, k: int = 3):
    """Load one customer in `modulo`, grant profiling, compute features and run k-means."""
    from segmentation.services import (
        clustering_run_create,
        clustering_run_execute,
        features_compute,
    )

    lines = read_lines(lambda customer: customer % modulo == 0)
    customers = load_events(lines)
    grant_profiling(list(customers.values()))
    features_compute(actor="test", as_of=max(x.when for x in lines) + dt.timedelta(days=1))
    run = clustering_run_create(actor="test", params={"k": k}, name="retail", enqueue=False)
    return clustering_run_execute(run_id=run.pk)
