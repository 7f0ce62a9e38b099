import numpy as np
import pytest

from segmentation.ml.scores import (
    FEATURE_NAMES,
    OrderTable,
    ScoreKind,
    classifier_metrics,
    make_model,
    order_features,
    order_labels,
    population,
    predict_scores,
    recency_baseline,
    regression_metrics,
    reliability_table,
    train_time_split,
)
from segmentation.ml.storage import StoredModel, model_dumps, model_loads

KEY = b"s" * 32


def col(name: str) -> int:
    return FEATURE_NAMES.index(name)


@pytest.fixture
def small_orders() -> OrderTable:
    # customer 0: orders on days 10, 50, 95; customer 1: day 20 only; customer 2: day 120 only.
    return OrderTable(
        customer=np.array([0, 0, 0, 1, 2]),
        day=np.array([10.0, 50.0, 95.0, 20.0, 120.0]),
        value=np.array([10.0, 30.0, 20.0, 5.0, 100.0]),
        n_customers=4,
    )


def synthetic_orders(n: int = 3000, days: int = 360, seed: int = 0) -> OrderTable:
    """Customers with a personal order rate, some of whom stop buying at a random day: the rate
    and the stop are what a model can learn and recency alone cannot fully see."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(1.2, 1 / 40, n)  # orders per day
    stop = np.where(rng.random(n) < 0.5, rng.uniform(0, days, n), days + 1)
    customers, when = [], []
    for c in range(n):
        t = rng.exponential(1 / rate[c])
        while t < min(stop[c], days):
            customers.append(c)
            when.append(t)
            t += rng.exponential(1 / rate[c])
    value = rng.lognormal(3, 0.5, len(customers))
    return OrderTable(np.array(customers), np.array(when), value, n)


def test_features_ignore_orders_at_or_after_as_of(small_orders):
    X = order_features(small_orders, as_of=60.0)

    assert X.shape == (4, len(FEATURE_NAMES))
    assert X[0, col("frequency")] == 2
    assert X[0, col("monetary")] == 40.0
    assert X[0, col("recency_days")] == 10.0
    assert X[0, col("tenure_days")] == 50.0
    assert X[0, col("days_between_orders")] == 40.0
    assert X[0, col("orders_30d")] == 1 and X[0, col("orders_90d")] == 2
    assert X[2, col("frequency")] == 0 and X[2, col("has_ordered")] == 0
    assert X[2, col("recency_days")] == 3650.0
    assert X[1, col("avg_order_value")] == 5.0
    assert np.isfinite(X).all()


def test_labels_come_from_the_horizon_only(small_orders):
    churn = order_labels(small_orders, cutoff=60.0, horizon_days=40, kind=ScoreKind.CHURN)
    prop = order_labels(small_orders, cutoff=60.0, horizon_days=40, kind=ScoreKind.PROPENSITY)
    spend = order_labels(small_orders, cutoff=60.0, horizon_days=80, kind=ScoreKind.EXPECTED_SPEND)

    assert churn.tolist() == [0, 1, 1, 1]
    assert prop.tolist() == [1, 0, 0, 0]
    assert spend.tolist() == [20.0, 0.0, 100.0, 0.0]


def test_population_is_customers_who_ordered_before(small_orders):
    for kind in ScoreKind:
        assert population(small_orders, as_of=60.0, kind=kind).tolist() == [
            True,
            True,
            False,
            False,
        ]


def test_order_table_refuses_bad_input():
    with pytest.raises(ValueError, match="out of range"):
        OrderTable(np.array([3]), np.array([1.0]), np.array([1.0]), n_customers=2)
    with pytest.raises(ValueError, match="finite"):
        OrderTable(np.array([0]), np.array([np.nan]), np.array([1.0]), n_customers=1)


def test_classifier_metrics_match_a_hand_computation():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.8])

    m = classifier_metrics(y, p)

    assert m["roc_auc"] == pytest.approx(0.75)  # 3 of 4 positive/negative pairs ordered right
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == 0.5
    assert m["brier"] == pytest.approx((0.01 + 0.36 + 0.36 + 0.04) / 4)
    assert sum(row["count"] for row in m["calibration"]) == 4


def test_roc_auc_is_none_when_one_class_only():
    assert classifier_metrics(np.array([1, 1]), np.array([0.2, 0.9]))["roc_auc"] is None


def test_reliability_table_bins_by_predicted_probability():
    rows = reliability_table(np.array([0, 1, 1, 1]), np.array([0.05, 0.05, 0.95, 0.95]), bins=10)

    assert [(r["bin_low"], r["count"], r["observed_rate"]) for r in rows] == [
        (0.0, 2, 0.5),
        (pytest.approx(0.9), 2, 1.0),
    ]


def test_regression_metrics_match_a_hand_computation():
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))

    assert m["mae"] == pytest.approx(2 / 3)
    assert m["rmse"] == pytest.approx(np.sqrt(4 / 3))
    assert m["r2"] == pytest.approx(1 - 4 / 2)


def test_recency_baseline_ranks_older_customers_as_riskier():
    X = np.zeros((3, len(FEATURE_NAMES)))
    X[:, col("recency_days")] = [5, 50, 500]

    churn = recency_baseline(X, kind=ScoreKind.CHURN)
    prop = recency_baseline(X, kind=ScoreKind.PROPENSITY)

    assert list(np.argsort(churn)) == [0, 1, 2]
    assert list(np.argsort(prop)) == [2, 1, 0]


@pytest.mark.parametrize("kind", [ScoreKind.CHURN, ScoreKind.PROPENSITY])
def test_time_split_classifier_beats_the_recency_baseline(kind):
    orders = synthetic_orders()

    result = train_time_split(orders, kind=kind, train_cutoff=180, test_cutoff=270, horizon_days=90)

    assert result.metrics["roc_auc"] > 0.6
    assert result.metrics["roc_auc"] >= result.baseline["roc_auc"] - 0.01
    assert set(result.importances) == set(FEATURE_NAMES)
    assert result.window == {"train_cutoff": 180, "test_cutoff": 270, "horizon_days": 90}
    assert {"precision", "recall", "f1", "brier", "calibration"} <= set(result.metrics)


def test_time_split_regression_records_error_metrics():
    result = train_time_split(
        synthetic_orders(),
        kind=ScoreKind.EXPECTED_SPEND,
        train_cutoff=180,
        test_cutoff=270,
        horizon_days=90,
    )

    assert set(result.metrics) == {"rmse", "mae", "r2", "n"}
    assert result.metrics["r2"] > 0.1


def test_time_split_refuses_overlapping_label_windows():
    with pytest.raises(ValueError, match="before the test cutoff"):
        train_time_split(
            synthetic_orders(n=50),
            kind=ScoreKind.CHURN,
            train_cutoff=200,
            test_cutoff=250,
            horizon_days=90,
        )


def test_predict_scores_refuses_wrong_width_and_non_finite_values():
    orders = synthetic_orders(n=400)
    X = order_features(orders, as_of=200)
    y = order_labels(orders, cutoff=200, horizon_days=60, kind=ScoreKind.PROPENSITY)
    model = make_model(ScoreKind.PROPENSITY).fit(X, y)

    scores = predict_scores(model, X, kind=ScoreKind.PROPENSITY)
    assert scores.shape == (400,) and ((scores >= 0) & (scores <= 1)).all()
    with pytest.raises(ValueError, match="columns"):
        predict_scores(model, X[:, :3], kind=ScoreKind.PROPENSITY)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        predict_scores(model, bad, kind=ScoreKind.PROPENSITY)


def test_score_model_round_trips_through_signed_storage():
    orders = synthetic_orders(n=400)
    X = order_features(orders, as_of=200)
    y = order_labels(orders, cutoff=200, horizon_days=60, kind=ScoreKind.CHURN)
    model = make_model(ScoreKind.CHURN).fit(X, y)
    stored = StoredModel(
        pipeline=model, clusterer=None, feature_names=FEATURE_NAMES, metadata={"kind": "churn"}
    )

    loaded = model_loads(model_dumps(stored, key=KEY), key=KEY)

    np.testing.assert_array_equal(
        predict_scores(loaded.pipeline, X, kind=ScoreKind.CHURN),
        predict_scores(model, X, kind=ScoreKind.CHURN),
    )
    assert loaded.metadata == {"kind": "churn"}
