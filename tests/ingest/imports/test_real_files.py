"""Imports of the real data sets in ../shared/data, checked against independent computations."""

from __future__ import annotations

import gzip
import io
import json
import os
from decimal import Decimal

import pandas as pd
import pytest
from django.db.models import Sum

from cdp.ingest.models import Event, ImportStatus
from cdp.profiles.models import Customer, Identity, IdentityKind, SourceRecord
from tests.ingest.imports.helpers import DATA, assert_reconciles, run_import

pytestmark = pytest.mark.django_db

RETAIL = DATA / "uci_online_retail" / "online_retail.csv.gz"
# The first 30,000 lines (December 2010) hold every quirk; CDP_TEST_RETAIL_LINES=0 imports all
# 541,909 (about ten minutes on a quiet two-core machine).
RETAIL_LINES = int(os.environ.get("CDP_TEST_RETAIL_LINES", "30000")) or None
RETAIL_KEY = ["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID"]


def retail_sample() -> bytes:
    with gzip.open(RETAIL, "rb") as handle:
        if RETAIL_LINES is None:
            return handle.read()
        return b"".join(next(handle) for _ in range(RETAIL_LINES + 1))


def test_online_retail_import_matches_pandas_exactly() -> None:
    data = retail_sample()
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    # Mapped columns only (the description is not stored): exact duplicates are one line.
    lines = frame.drop_duplicates(subset=[*RETAIL_KEY, "Country"])
    known = lines[lines.CustomerID != ""]
    anonymous = lines[lines.CustomerID == ""]
    refunds = lines[lines.InvoiceNo.str.startswith("C") | (lines.Quantity.astype(int) < 0)]
    total = sum(
        Decimal(q) * Decimal(p) for q, p in zip(lines.Quantity, lines.UnitPrice, strict=True)
    )

    job = run_import(data, kind="transactions", source="retail", options={"currency": "GBP"})

    assert job.status == ImportStatus.COMPLETED, job.error_message
    assert_reconciles(job)
    assert job.rows_done == len(frame)
    assert job.rejected == 0
    assert job.duplicates == len(frame) - len(lines)
    assert job.created == len(lines)
    events = Event.objects.filter(source__name="retail")
    assert events.count() == len(lines)
    assert events.filter(name="Order Refunded").count() == len(refunds)
    assert job.stats["refund_lines"] == len(refunds)
    assert job.stats["anonymous_lines"] == len(anonymous)
    orders = events.values("properties__order_id").distinct().count()
    assert orders == lines.InvoiceNo.nunique()
    assert events.aggregate(s=Sum("amount"))["s"] == total
    external = Identity.objects.filter(kind=IdentityKind.EXTERNAL_ID, namespace="retail")
    assert external.count() == known.CustomerID.nunique()
    invoices = Identity.objects.filter(kind=IdentityKind.ANONYMOUS_ID, namespace="retail")
    assert invoices.count() == anonymous.InvoiceNo.nunique()
    assert Customer.objects.count() == known.CustomerID.nunique() + anonymous.InvoiceNo.nunique()
    # Each known customer's lines are on one profile; the non-product lines are flagged.
    non_product = lines[~lines.StockCode.str[:1].str.isdigit()]
    assert events.filter(properties__non_product=True).count() == len(non_product)
    one = known.CustomerID.iloc[0]
    customer = Identity.objects.get(namespace="retail", kind="external_id", value_index=_index(one))
    assert (
        events.filter(customer_id=customer.customer_id).count() == (known.CustomerID == one).sum()
    )
    assert job.quality["measures"]["quantity"]["count"] == len(frame)  # all clean rows

    again = run_import(data, kind="transactions", source="retail", options={"currency": "GBP"})

    assert again.status == ImportStatus.COMPLETED
    assert (again.created, again.updated, again.rejected) == (0, 0, 0)
    assert again.duplicates == len(frame)
    assert events.count() == len(lines)
    assert Customer.objects.count() == known.CustomerID.nunique() + anonymous.InvoiceNo.nunique()


def _index(value: str) -> bytes:
    from cdp.profiles.services import identifier_index

    return identifier_index(IdentityKind.EXTERNAL_ID, value.split(".")[0])[1]


def test_ifood_duplicated_enrolments_are_merged_by_the_content_rule() -> None:
    path = DATA / "customer_personality_ifood" / "marketing_campaign.csv"
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    twins = frame.drop(columns=["ID"]).duplicated()
    assert twins.sum() == 182

    job = run_import(
        path,
        source="ifood",
        options={"day_first": True, "rules": ["customer_id", "content"]},
    )

    assert job.status == ImportStatus.COMPLETED, job.error_message
    assert_reconciles(job)
    assert (job.rows_done, job.rejected) == (2240, 0)
    assert job.created == len(frame) - twins.sum()
    assert job.duplicates == twins.sum() == job.stats["duplicates_merged"]
    assert Customer.objects.count() == len(frame) - twins.sum()
    # Every ID is kept as an identifier; a twin's ID resolves to its original's profile.
    assert Identity.objects.filter(namespace="ifood").count() == 2240
    columns = [c for c in frame.columns if c != "ID"]
    first_twin = frame[twins].iloc[0]
    original = frame[(frame[columns] == first_twin[columns]).all(axis=1)].iloc[0]
    owners = {
        Identity.objects.get(namespace="ifood", value_index=_index(i)).customer_id
        for i in (original.ID, first_twin.ID)
    }
    assert len(owners) == 1
    assert SourceRecord.objects.filter(source_name="ifood").count() == 2240
    # Typed values: numbers are numbers, the junk category is kept as text, a missing income
    # is absent (not an empty string).
    customer = Customer.objects.get(id=owners.pop())
    assert isinstance(customer.traits["income"], int)
    assert isinstance(customer.traits["year_birth"], int)
    assert job.quality["columns"]["Income"]["missing"] == 24
    # Income is a trait (personal, encrypted on the profile): its 666,666 is flagged as an
    # outlier, but neither it nor any other one person's value is in the report.
    income = job.quality["measures"]["income"]
    assert income["iqr_outliers"] >= 1 and income["iqr_fences"][1] < 666666
    assert "max" not in income and "min" not in income
    assert "666666" not in json.dumps(job.quality)


def test_telco_and_mall_import_with_the_right_types() -> None:
    telco = run_import(
        DATA / "telco_customer_churn_ibm" / "WA_Fn-UseC_-Telco-Customer-Churn.csv",
        source="telco",
    )
    mall = run_import(DATA / "mall_customers" / "Mall_Customers.csv", source="mall")

    assert telco.status == mall.status == ImportStatus.COMPLETED
    assert_reconciles(telco)
    assert_reconciles(mall)
    assert (telco.created, telco.rejected, mall.created, mall.rejected) == (7043, 0, 200, 0)
    by_id = {
        i.value: i.customer_id
        for i in Identity.objects.filter(namespace__in=["telco", "mall"]).filter(
            value_index__in=[_index("7590-VHVEG"), _index("0001"), _index("3115-CZMZD")]
        )
    }
    assert set(by_id) == {"7590-VHVEG", "0001", "3115-CZMZD"}  # zero padding kept
    first = Customer.objects.get(id=by_id["7590-VHVEG"]).traits
    assert first["seniorcitizen"] == 0 and first["tenure"] == 1
    assert first["monthlycharges"] == 29.85 and first["contract"] == "Month-to-month"
    blank_total = Customer.objects.get(id=by_id["3115-CZMZD"]).traits  # TotalCharges " "
    assert "totalcharges" not in blank_total and blank_total["tenure"] == 0
    assert telco.quality["columns"]["TotalCharges"]["missing"] == 11
    mall_one = Customer.objects.get(id=by_id["0001"]).traits
    assert mall_one == {
        "genre": "Male",
        "age": 19,
        "annual_income_k": 15,
        "spending_score_1_100": 39,
    }
