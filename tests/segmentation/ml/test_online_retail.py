"""RFM on the real UCI Online Retail data, checked against an independent pandas computation.

The project side derives recency/frequency/monetary with the csv module (as the SQL features
will: purchases only, i.e. customer known, no cancellation invoice, positive quantity and price),
then scores them with `rfm_scores`. The pandas side is the textbook notebook recipe: groupby,
`qcut` of first ranks, and the R/F regular-expression segment map.
"""

import csv
import gzip
from collections import defaultdict
from datetime import datetime, timedelta

import numpy as np
import pytest

from segmentation.ml.cluster import run_clustering
from segmentation.ml.personas import personas, rfm_scores
from segmentation.ml.preprocess import preprocess_fit
from tests.segmentation.ml.conftest import ROOT

pd = pytest.importorskip("pandas")

DATA = ROOT.parent / "shared" / "data" / "uci_online_retail" / "online_retail.csv.gz"
pytestmark = pytest.mark.skipif(not DATA.exists(), reason="Online Retail data not present")

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
def project_rfm() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Customer ids (sorted) and their recency in days, invoice count, and spend in pounds."""
    last: dict[int, datetime] = {}
    invoices: dict[int, set[str]] = defaultdict(set)
    pence: dict[int, int] = defaultdict(int)
    latest = datetime.min
    with gzip.open(DATA, "rt", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            when = datetime.fromisoformat(row["InvoiceDate"])
            latest = max(latest, when)
            quantity, price = int(row["Quantity"]), float(row["UnitPrice"])
            if not row["CustomerID"] or row["InvoiceNo"].startswith("C"):
                continue
            if quantity <= 0 or price <= 0:
                continue
            customer = int(float(row["CustomerID"]))
            last[customer] = max(last.get(customer, when), when)
            invoices[customer].add(row["InvoiceNo"])
            pence[customer] += quantity * round(price * 100)
    snapshot = latest + timedelta(days=1)
    ids = np.array(sorted(last))
    recency = np.array([(snapshot - last[c]).days for c in ids])
    frequency = np.array([len(invoices[c]) for c in ids])
    monetary = np.array([pence[c] / 100 for c in ids])
    return ids, recency, frequency, monetary


@pytest.fixture(scope="module")
def pandas_rfm():
    df = pd.read_csv(DATA, dtype={"InvoiceNo": str, "StockCode": str}, parse_dates=["InvoiceDate"])
    snapshot = df["InvoiceDate"].max() + pd.Timedelta(days=1)
    df = df[
        df["CustomerID"].notna()
        & ~df["InvoiceNo"].str.startswith("C")
        & (df["Quantity"] > 0)
        & (df["UnitPrice"] > 0)
    ].copy()
    df["CustomerID"] = df["CustomerID"].astype(int)
    df["Amount"] = df["Quantity"] * df["UnitPrice"]
    rfm = df.groupby("CustomerID").agg(
        recency=("InvoiceDate", lambda d: (snapshot - d.max()).days),
        frequency=("InvoiceNo", "nunique"),
        monetary=("Amount", "sum"),
    )
    rfm["monetary"] = rfm["monetary"].round(2)
    rfm["R"] = pd.qcut(rfm["recency"].rank(method="first"), 5, labels=[5, 4, 3, 2, 1])
    rfm["F"] = pd.qcut(rfm["frequency"].rank(method="first"), 5, labels=[1, 2, 3, 4, 5])
    rfm["M"] = pd.qcut(rfm["monetary"].rank(method="first"), 5, labels=[1, 2, 3, 4, 5])
    rf = rfm["R"].astype(str) + rfm["F"].astype(str)
    # Dict order matters: "11" is claimed as Lost before the Hibernating pattern sees it.
    rfm["segment"] = rf
    for pattern, name in SEGMENT_MAP.items():
        rfm.loc[rf.str.fullmatch(pattern) & (rfm["segment"] == rf), "segment"] = name
    return rfm


def test_rfm_features_match_pandas_for_every_customer(project_rfm, pandas_rfm):
    ids, recency, frequency, monetary = project_rfm

    assert len(ids) == 4338  # 4,372 customers, less 34 with no qualifying purchase
    assert ids.tolist() == pandas_rfm.index.tolist()
    assert recency.tolist() == pandas_rfm["recency"].tolist()
    assert frequency.tolist() == pandas_rfm["frequency"].tolist()
    np.testing.assert_allclose(monetary, pandas_rfm["monetary"].to_numpy(), rtol=0, atol=1e-6)


def test_rfm_segment_counts_match_pandas(project_rfm, pandas_rfm):
    _, recency, frequency, monetary = project_rfm

    scores = rfm_scores(recency, frequency, monetary)

    assert scores.r.tolist() == pandas_rfm["R"].astype(int).tolist()
    assert scores.f.tolist() == pandas_rfm["F"].astype(int).tolist()
    assert scores.m.tolist() == pandas_rfm["M"].astype(int).tolist()
    counts = dict(zip(*np.unique(scores.segment.astype(str), return_counts=True), strict=True))
    assert {k: int(v) for k, v in counts.items()} == pandas_rfm["segment"].value_counts().to_dict()
    assert scores.segment.tolist() == pandas_rfm["segment"].tolist()


def test_clustering_run_on_real_customers_records_metrics_and_personas(project_rfm):
    _, recency, frequency, monetary = project_rfm
    X = np.column_stack([recency, frequency, monetary]).astype(float)
    names = ["recency", "frequency", "monetary"]

    prep = preprocess_fit(X, names)
    result = run_clustering(
        prep.pipeline.transform(X),
        algorithm="kmeans",
        params={"k_min": 2, "k_max": 6},
        random_state=0,
    )
    profiles = personas(X, result.labels, names)

    assert set(prep.log_features) == {"recency", "frequency", "monetary"}  # long right tails
    assert 2 <= result.k <= 6 and len(result.metrics["k_scan"]) == 5
    assert 0 < result.metrics["silhouette"] <= 1
    assert result.metrics["calinski_harabasz"] > 0 and result.metrics["davies_bouldin"] > 0
    assert sum(p.size for p in profiles) == len(X)
    assert len({p.label for p in profiles}) == result.k
