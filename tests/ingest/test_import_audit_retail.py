"""Audit of issue #5: the Online Retail quirks that the default test's first 30,000 lines
(December 2010) do not contain, checked against pandas: the `A` bad-debt invoices with a
negative unit price, the +-80,995 quantity pair and the 38,970 unit price (outliers in the
quality report), "Unspecified" and "European Community" countries, customers with two
countries, gift vouchers and fee lines."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
from django.db.models import Sum

from cdp.ingest.models import Event, ImportStatus
from cdp.profiles.models import Customer, Identity, IdentityKind
from tests.ingest.imports.helpers import DATA, assert_reconciles, run_import

pytestmark = pytest.mark.django_db

RETAIL = DATA / "uci_online_retail" / "online_retail.csv.gz"
KEY = ["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings: Any, tmp_path: Any) -> None:
    """This module's encrypted uploads go to a temporary directory, not the checkout's var/."""
    settings.CDP_IMPORT_DIR = str(tmp_path / "uploads")


def quirk_invoices() -> pd.DataFrame:
    """Whole invoices holding the quirks, a few of each kind, in file order."""
    frame = pd.read_csv(RETAIL, dtype=str, keep_default_na=False)
    quantity = frame.Quantity.astype(int)
    price = frame.UnitPrice.astype(float)
    countries = frame[frame.CustomerID != ""].groupby("CustomerID").Country.nunique()
    two_countries = sorted(countries[countries > 1].index)[:2]

    def first(mask: pd.Series, n: int) -> list[str]:
        return list(dict.fromkeys(frame[mask].InvoiceNo))[:n]

    invoices = set(
        first(frame.InvoiceNo.str.startswith("A"), 3)
        + first(quantity.abs() >= 10_000, 10)
        + first(price >= 10_000, 5)
        + first(price >= 30_000, 1)  # the 38,970 "Manual" line of C556445
        + first(frame.Country == "Unspecified", 3)
        + first(frame.Country == "European Community", 3)
        + first(frame.CustomerID.isin(two_countries), 6)
        + first(frame.StockCode.str.startswith("gift"), 3)
        + first(frame.StockCode.isin(["AMAZONFEE", "BANK CHARGES", "CRUK"]), 6)
    )
    return frame[frame.InvoiceNo.isin(invoices)]


def test_online_retail_quirks_outside_the_default_sample_match_pandas() -> None:
    frame = quirk_invoices()
    assert frame.InvoiceNo.str.startswith("A").sum() == 3
    assert {"80995", "-80995"} <= set(frame.Quantity)
    lines = frame.drop_duplicates(subset=KEY)
    known = lines[lines.CustomerID != ""]
    anonymous = lines[lines.CustomerID == ""]
    refunds = lines[lines.InvoiceNo.str.startswith("C") | (lines.Quantity.astype(int) < 0)]
    non_product = lines[~lines.StockCode.str[:1].str.isdigit()]
    total = sum(
        Decimal(q) * Decimal(p) for q, p in zip(lines.Quantity, lines.UnitPrice, strict=True)
    )

    job = run_import(
        frame.to_csv(index=False).encode(),
        kind="transactions",
        source="retail",
        options={"currency": "GBP"},
    )

    assert job.status == ImportStatus.COMPLETED, job.error_message
    assert_reconciles(job)
    assert (job.rows_done, job.rejected) == (len(frame), 0)
    assert (job.created, job.duplicates) == (len(lines), len(frame) - len(lines))
    events = Event.objects.filter(source__name="retail")
    assert events.count() == len(lines)
    assert events.filter(name="Order Refunded").count() == len(refunds)
    assert events.filter(properties__non_product=True).count() == len(non_product)
    assert events.aggregate(s=Sum("amount"))["s"] == total
    assert events.values("properties__order_id").distinct().count() == lines.InvoiceNo.nunique()
    assert (job.stats["anonymous_lines"], job.stats["refund_lines"]) == (
        len(anonymous),
        len(refunds),
    )
    external = Identity.objects.filter(kind=IdentityKind.EXTERNAL_ID, namespace="retail")
    invoices = Identity.objects.filter(kind=IdentityKind.ANONYMOUS_ID, namespace="retail")
    assert external.count() == known.CustomerID.nunique()
    assert invoices.count() == anonymous.InvoiceNo.nunique()
    assert Customer.objects.count() == known.CustomerID.nunique() + anonymous.InvoiceNo.nunique()
    # Bad debt: a negative unit price is a negative amount on a flagged non-product line.
    bad_debt = events.filter(amount=Decimal("-11062.06"))
    assert bad_debt.count() == 2
    assert all(e.properties["non_product"] for e in bad_debt)
    # The quality report flags the +-80,995 pair and the 38,970 price as outliers.
    quantity = job.quality["measures"]["quantity"]
    assert (quantity["min"], quantity["max"]) == (-80995.0, 80995.0)
    assert quantity["z_outliers"] >= 2 and quantity["iqr_outliers"] >= 2
    price = job.quality["measures"]["price"]
    assert price["max"] == 38970.0 and price["z_outliers"] >= 1
    assert job.quality["duplicates"] == job.duplicates
