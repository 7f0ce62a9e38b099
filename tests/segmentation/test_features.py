"""Features computed in SQL against an independent pandas computation on real Online Retail lines,
RFM segment counts against the textbook pandas recipe, and consent gating."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest

from segmentation.models import CustomerFeatures, FeatureRun, RunStatus
from segmentation.services import features_compute
from tests.segmentation.online_retail import (
    DATA,
    grant_profiling,
    is_non_product,
    is_refund,
    load_events,
    read_lines,
)

pd = pytest.importorskip("pandas")
pytestmark = [
    pytest.mark.skipif(not DATA.exists(), reason="Online Retail data not present"),
    pytest.mark.django_db,
]

SEGMENT_MAP = {
    r"11": "Lost",
    r"[1-2][1-2]": "Hibernating",
    r"[1-2][3-4]": "At risk",
    r"[1-2]5": "Can't lose them",
    r"3[1-2]": "About to sleep",
    r"33": "Need attention",
    r"[3-4][4-5]": "Loyal",
    r"41": "Promising",
    r"51": "New customers",
    r"[4-5][2-3]": "Potential loyalist",
    r"5[4-5]": "Champions",
}


@pytest.fixture(scope="module")
def lines():
    # About one customer in twelve: ~360 customers, ~33,000 lines, every kind of line.
    return read_lines(lambda customer: customer % 12 == 0)


def pandas_features(lines, customers, as_of: pd.Timestamp) -> pd.DataFrame:
    """The definitions of segmentation.features, written independently over a DataFrame."""
    df = pd.DataFrame(
        {
            "customer": [str(customers[x.customer]) for x in lines],
            "invoice": [x.invoice for x in lines],
            "stock": [x.stock_code for x in lines],
            "when": pd.to_datetime([x.when for x in lines], utc=True),
            "amount": [float(x.quantity * x.price) for x in lines],
            "refund": [is_refund(x) for x in lines],
            "non_product": [is_non_product(x) for x in lines],
        }
    )
    orders = df[~df["refund"]]
    refunds = df[df["refund"]]
    out = pd.DataFrame(index=sorted(str(c) for c in customers.values()))
    g = orders.groupby("customer")
    out["frequency"] = g["invoice"].nunique()
    out["monetary"] = g["amount"].sum()
    first, last = g["when"].min(), g["when"].max()
    out["recency_days"] = ((as_of - last) / pd.Timedelta(days=1)).apply(math.floor)
    out["tenure_days"] = ((as_of - first) / pd.Timedelta(days=1)).apply(math.floor)
    out["days_between_orders"] = (last - first) / pd.Timedelta(days=1) / (out["frequency"] - 1)
    out.loc[out["frequency"] <= 1, "days_between_orders"] = float("nan")
    out["avg_order_value"] = out["monetary"] / out["frequency"]
    out["refunds"] = refunds.groupby("customer")["invoice"].nunique()
    out["refunded_value"] = refunds.groupby("customer")["amount"].sum().abs()
    out["distinct_products"] = orders[~orders["non_product"]].groupby("customer")["stock"].nunique()
    for column in ("frequency", "monetary", "refunds", "refunded_value", "distinct_products"):
        out[column] = out[column].fillna(0)
    return out


def project_features() -> pd.DataFrame:
    rows = CustomerFeatures.objects.values()
    df = pd.DataFrame.from_records(list(rows))
    df.index = df["customer_id"].astype(str)
    return df.sort_index()


def test_features_match_pandas_for_every_customer(lines):
    customers = load_events(lines)
    grant_profiling(list(customers.values()))
    as_of = max(x.when for x in lines) + dt.timedelta(days=1)

    run = features_compute(actor="test", as_of=as_of)

    expected = pandas_features(lines, customers, pd.Timestamp(as_of))
    got = project_features()
    assert run.status == RunStatus.SUCCEEDED and run.customers == len(customers)
    assert got.index.tolist() == expected.index.tolist()
    for column in ("frequency", "refunds", "distinct_products"):
        assert got[column].tolist() == expected[column].astype(int).tolist(), column
    for column in ("recency_days", "tenure_days"):
        assert (
            got[column].astype("Float64").tolist() == expected[column].astype("Float64").tolist()
        ), column
    for column in ("monetary", "refunded_value", "avg_order_value", "days_between_orders"):
        left = pd.to_numeric(got[column], errors="coerce").astype(float).to_numpy()
        right = expected[column].astype(float).to_numpy()
        assert ((pd.isna(left)) == (pd.isna(right))).all(), column
        mask = ~pd.isna(right)
        assert abs(left[mask] - right[mask]).max() < 1e-6 * max(1, abs(right[mask]).max()), column
    # No behaviour events in a sales ledger, and no categories.
    assert set(got["views_30d"]) == {0} and set(got["cart_abandonments_90d"]) == {0}
    assert set(got["favourite_category"]) == {""}


def test_rfm_segment_counts_match_pandas(lines):
    customers = load_events(lines)
    grant_profiling(list(customers.values()))
    as_of = max(x.when for x in lines) + dt.timedelta(days=1)

    features_compute(actor="test", as_of=as_of)

    rfm = pandas_features(lines, customers, pd.Timestamp(as_of))
    rfm = rfm[rfm["frequency"] > 0].sort_index()  # ties go by customer id, as in the SQL
    rfm["R"] = pd.qcut(rfm["recency_days"].rank(method="first"), 5, labels=[5, 4, 3, 2, 1])
    rfm["F"] = pd.qcut(rfm["frequency"].rank(method="first"), 5, labels=[1, 2, 3, 4, 5])
    rfm["M"] = pd.qcut(rfm["monetary"].rank(method="first"), 5, labels=[1, 2, 3, 4, 5])
    rf = rfm["R"].astype(str) + rfm["F"].astype(str)
    rfm["segment"] = rf
    for pattern, name in SEGMENT_MAP.items():
        rfm.loc[rf.str.fullmatch(pattern) & (rfm["segment"] == rf), "segment"] = name
    got = project_features()
    scored = got[got["frequency"] > 0]

    assert scored["rfm_r"].astype(int).tolist() == rfm["R"].astype(int).tolist()
    assert scored["rfm_f"].astype(int).tolist() == rfm["F"].astype(int).tolist()
    assert scored["rfm_m"].astype(int).tolist() == rfm["M"].astype(int).tolist()
    assert scored["rfm_segment"].value_counts().to_dict() == rfm["segment"].value_counts().to_dict()
    assert len(rfm["segment"].unique()) >= 8
    assert got.loc[got["frequency"] == 0, "rfm_segment"].eq("").all()


def test_features_only_for_customers_allowed_for_profiling(lines):
    customers = load_events(lines[:3000])
    ids = sorted(customers.values())
    allowed, refused, withdrawn = ids[::3], ids[1::3], ids[2::3]
    grant_profiling(allowed + withdrawn)
    grant_profiling(withdrawn, granted=False)

    run = features_compute(actor="test")

    stored = set(CustomerFeatures.objects.values_list("customer_id", flat=True))
    assert stored == set(allowed)
    assert run.customers == len(allowed)
    assert not stored & set(refused + withdrawn)


def test_rerun_removes_customers_who_lost_consent(lines):
    customers = load_events(lines[:3000])
    ids = sorted(customers.values())
    grant_profiling(ids)
    features_compute(actor="test")
    from cdp.profiles.models import Customer

    Customer.objects.filter(id=ids[0]).update(status="restricted")
    grant_profiling([ids[1]], granted=False)  # hooks run after commit, on the worker

    run = features_compute(actor="test")

    stored = set(CustomerFeatures.objects.values_list("customer_id", flat=True))
    assert stored == set(ids[2:])
    assert run.removed == 2
    assert FeatureRun.objects.filter(status=RunStatus.SUCCEEDED).count() == 2


@pytest.mark.parametrize("monetary_total", [Decimal("0")])
def test_features_of_a_customer_without_events_are_zero(monetary_total):
    from cdp.profiles.services import customer_create

    customer = customer_create(actor="test", country="GB")
    from tests.segmentation.online_retail import grant_profiling as grant

    grant([customer.id])

    features_compute(actor="test")

    row = CustomerFeatures.objects.get(customer=customer)
    assert row.frequency == 0 and row.monetary == monetary_total
    assert row.recency_days is None and row.rfm_segment == "" and row.rfm_r is None


def test_chunked_run_writes_the_same_features_and_rfm_as_one_statement(lines):
    from segmentation.services import feature_run_create, feature_run_execute

    customers = load_events(lines[:6000])
    grant_profiling(list(customers.values()))
    as_of = max(x.when for x in lines[:6000]) + dt.timedelta(days=1)
    features_compute(actor="test", as_of=as_of)
    skip = {"feature_run_id", "computed_at"}
    whole = project_features().drop(columns=list(skip))

    run = feature_run_create(actor="test", as_of=as_of, enqueue=False)
    run = feature_run_execute(run_id=run.pk, chunk_size=7)

    chunked = project_features().drop(columns=list(skip))
    assert run.chunks_total == len(customers) // 7 + 1 and run.chunks_done == run.chunks_total

    def records(df):
        return df.astype(object).where(df.notna(), None).to_dict("records")

    assert records(chunked) == records(whole)
    assert chunked["rfm_segment"].ne("").sum() > 0
