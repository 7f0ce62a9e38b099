"""Predictive scores: churn risk, purchase propensity and expected spend, over NumPy arrays.

Training uses a time-based split so nothing leaks from the future: features are computed from the
orders before a cutoff, labels from the orders in the horizon after it. The same feature function
serves training (as of the cutoff) and scoring (as of now), so a model never sees a feature it was
not trained on. Models are scikit-learn pipelines (log transform + histogram gradient boosting),
stored with `segmentation.ml.storage` (signed, format-versioned) by the Django side.

The order table every function takes is one row per order: customer index (0..n_customers-1),
order time in days (float, any epoch), and order value. The caller builds it from
"Order Completed" events (or the CSV), so this module needs no database.
"""

from __future__ import annotations

import contextlib
import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import (
    brier_score_loss,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from threadpoolctl import ThreadpoolController

from segmentation.ml._sample import sample_indices


class ScoreKind(enum.StrEnum):
    CHURN = "churn"  # no order in the next `horizon_days` (customers who ordered before)
    PROPENSITY = "propensity"  # at least one order in the next `horizon_days`
    EXPECTED_SPEND = "expected_spend"  # order value in the next `horizon_days`


CLASSIFIERS = (ScoreKind.CHURN, ScoreKind.PROPENSITY)

# Matrix column order; every model stores it and scoring refuses another width.
FEATURE_NAMES: tuple[str, ...] = (
    "recency_days",
    "frequency",
    "monetary",
    "avg_order_value",
    "tenure_days",
    "orders_30d",
    "orders_90d",
    "monetary_90d",
    "days_between_orders",
    "has_ordered",
)
_LOG_COLUMNS = (1, 2, 3, 5, 6, 7)  # counts and money: heavy right tails
_NO_HISTORY_DAYS = 3650.0  # recency/tenure stand-in for customers with no order yet
# Below this many rows, gradient boosting runs on one OpenMP thread: starting and joining a
# thread team costs more than the work, and on a busy machine ~10x more (80 ms vs 6 ms).
_SINGLE_THREAD_ROWS = 50_000
_threads = ThreadpoolController()


def _one_thread_if_small(rows: int):  # -> context manager
    if rows < _SINGLE_THREAD_ROWS:
        return _threads.limit(limits=1, user_api="openmp")
    return contextlib.nullcontext()


@dataclass(frozen=True)
class OrderTable:
    """One row per order: who (customer index), when (days), how much (value)."""

    customer: np.ndarray  # int64, 0..n_customers-1
    day: np.ndarray  # float64 days since any fixed epoch
    value: np.ndarray  # float64 order value (returns netted by the caller or separate)
    n_customers: int

    def __post_init__(self) -> None:
        if not (len(self.customer) == len(self.day) == len(self.value)):
            raise ValueError("order columns must have the same length")
        if len(self.customer) and (
            self.customer.min() < 0 or self.customer.max() >= self.n_customers
        ):
            raise ValueError("customer index out of range")
        if not (np.isfinite(self.day).all() and np.isfinite(self.value).all()):
            raise ValueError("order days and values must be finite")


def order_features(orders: OrderTable, *, as_of: float) -> np.ndarray:
    """Features of every customer from the orders strictly before `as_of` (days), in
    FEATURE_NAMES order. Orders at or after `as_of` are ignored: that is the leak guard."""
    n = orders.n_customers
    past = orders.day < as_of
    cust, day, value = orders.customer[past], orders.day[past], orders.value[past]
    frequency = np.bincount(cust, minlength=n).astype(np.float64)
    monetary = np.bincount(cust, weights=value, minlength=n)
    last = np.full(n, -np.inf)
    np.maximum.at(last, cust, day)
    first = np.full(n, np.inf)
    np.minimum.at(first, cust, day)
    has = frequency > 0
    recency = np.where(has, as_of - last, _NO_HISTORY_DAYS)
    tenure = np.where(has, as_of - first, 0.0)
    recent30 = day >= as_of - 30
    recent90 = day >= as_of - 90
    orders_30 = np.bincount(cust[recent30], minlength=n).astype(np.float64)
    orders_90 = np.bincount(cust[recent90], minlength=n).astype(np.float64)
    monetary_90 = np.bincount(cust[recent90], weights=value[recent90], minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        aov = np.where(has, monetary / np.maximum(frequency, 1), 0.0)
        between = np.where(frequency > 1, (last - first) / np.maximum(frequency - 1, 1), 0.0)
    X = np.column_stack(
        [
            recency,
            frequency,
            np.maximum(monetary, 0.0),
            np.maximum(aov, 0.0),
            tenure,
            orders_30,
            orders_90,
            np.maximum(monetary_90, 0.0),
            between,
            has.astype(np.float64),
        ]
    )
    return X


def order_labels(
    orders: OrderTable, *, cutoff: float, horizon_days: float, kind: ScoreKind
) -> np.ndarray:
    """Labels from the orders in [cutoff, cutoff + horizon): churn (1 = no order), propensity
    (1 = an order) or expected spend (the window's order value, floored at 0)."""
    n = orders.n_customers
    window = (orders.day >= cutoff) & (orders.day < cutoff + horizon_days)
    count = np.bincount(orders.customer[window], minlength=n)
    if kind == ScoreKind.CHURN:
        return (count == 0).astype(np.int64)
    if kind == ScoreKind.PROPENSITY:
        return (count > 0).astype(np.int64)
    spend = np.bincount(orders.customer[window], weights=orders.value[window], minlength=n)
    return np.maximum(spend, 0.0)


def population(orders: OrderTable, *, as_of: float, kind: ScoreKind) -> np.ndarray:
    """Row mask of who a model is about: customers with an order before `as_of`, for every
    kind. You cannot lose a customer who never bought, and for one with no history every
    feature is the same constant, so a score would only restate the base rate; worse, on an
    order log (Online Retail) "known but no order yet" means "orders later", a label leak."""
    del kind  # the same population for every kind, kept in the signature for callers
    seen = np.zeros(orders.n_customers, dtype=bool)
    seen[orders.customer[orders.day < as_of]] = True
    return seen


def _log_columns(X: np.ndarray) -> np.ndarray:
    out = np.array(X, dtype=np.float64, copy=True)
    cols = list(_LOG_COLUMNS)
    out[:, cols] = np.log1p(np.maximum(out[:, cols], 0.0))
    return out


def make_model(kind: ScoreKind, *, random_state: int = 0) -> Pipeline:
    """An unfitted pipeline for `kind`: log of counts and money, then gradient boosting (a
    Poisson loss for spend, which is non-negative and heavy-tailed)."""
    log = FunctionTransformer(_log_columns, validate=False)
    if kind in CLASSIFIERS:
        estimator: Any = HistGradientBoostingClassifier(
            max_iter=150,
            learning_rate=0.05,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            l2_regularization=1.0,
            random_state=random_state,
        )
    else:
        estimator = HistGradientBoostingRegressor(
            loss="poisson",
            max_iter=150,
            learning_rate=0.05,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            l2_regularization=1.0,
            random_state=random_state,
        )
    return Pipeline([("log", log), ("model", estimator)])


def _check_matrix(X: np.ndarray, width: int) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != width:
        raise ValueError(f"expected a 2-D matrix with {width} columns, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("the feature matrix has non-finite values")
    return X


def predict_scores(model: Pipeline, X: np.ndarray, *, kind: ScoreKind) -> np.ndarray:
    """Scores for the rows of X: the positive-class probability for classifiers, the expected
    value for spend. Refuses a matrix of the wrong width or with NaN/inf instead of scoring
    garbage. This is the one scoring path the Django side and the benchmark use."""
    X = _check_matrix(X, len(FEATURE_NAMES))
    with _one_thread_if_small(len(X)):
        if kind in CLASSIFIERS:
            return model.predict_proba(X)[:, 1]
        return np.maximum(model.predict(X), 0.0)


# -- metrics -------------------------------------------------------------------------------


def reliability_table(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> list[dict[str, float]]:
    """Calibration by equal-width probability bins: mean predicted vs observed rate, and count.
    Empty bins are left out."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            rows.append(
                {
                    "bin_low": float(edges[b]),
                    "bin_high": float(edges[b + 1]),
                    "mean_predicted": float(p[mask].mean()),
                    "observed_rate": float(y[mask].mean()),
                    "count": int(mask.sum()),
                }
            )
    return rows


def classifier_metrics(y: np.ndarray, p: np.ndarray, *, threshold: float = 0.5) -> dict[str, Any]:
    """ROC-AUC, precision, recall and F1 at `threshold`, Brier score and the reliability table.
    ROC-AUC is None when only one class is present (it is undefined there)."""
    y = np.asarray(y).astype(np.int64)
    p = np.asarray(p, dtype=np.float64)
    predicted = (p >= threshold).astype(np.int64)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "brier": float(brier_score_loss(y, p)),
        "threshold": threshold,
        "positive_rate": float(y.mean()) if len(y) else 0.0,
        "n": len(y),
        "calibration": reliability_table(y, p),
    }


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """RMSE, MAE and R-squared of a regression."""
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    return {
        "rmse": float(np.sqrt(mean_squared_error(y, pred))),
        "mae": float(mean_absolute_error(y, pred)),
        "r2": float(r2_score(y, pred)) if len(y) > 1 else None,
        "n": len(y),
    }


def recency_baseline(X: np.ndarray, *, kind: ScoreKind) -> np.ndarray:
    """The rule of thumb a model must beat: the longer since the last order, the likelier churn
    (and the less likely a purchase). Returned as a score in [0, 1] for ROC-AUC."""
    recency = np.asarray(X, dtype=np.float64)[:, FEATURE_NAMES.index("recency_days")]
    risk = recency / max(float(recency.max()), 1.0) if len(recency) else recency
    return risk if kind == ScoreKind.CHURN else 1.0 - risk


def feature_importances(
    model: Pipeline,
    X: np.ndarray,
    y: np.ndarray,
    *,
    kind: ScoreKind,
    sample: int = 5_000,
    repeats: int = 3,
    random_state: int = 0,
) -> dict[str, float]:
    """Permutation importance on a seeded sample (drop in ROC-AUC or R-squared when a column is
    shuffled): model-agnostic and measured on held-out rows, unlike impurity importances."""
    rows = sample_indices(len(X), sample, random_state)
    Xs, ys = np.asarray(X, dtype=np.float64)[rows], np.asarray(y)[rows]
    if kind in CLASSIFIERS and len(np.unique(ys)) < 2:
        return dict.fromkeys(FEATURE_NAMES, 0.0)

    def quality(matrix: np.ndarray) -> float:
        pred = predict_scores(model, matrix, kind=kind)
        if kind in CLASSIFIERS:
            return float(roc_auc_score(ys, pred))
        return float(r2_score(ys, pred)) if len(ys) > 1 else 0.0

    # The same loop as sklearn.inspection.permutation_importance, without its per-call
    # scorer and joblib overhead (seconds on small populations, where it dominated a run).
    rng = np.random.default_rng(random_state)
    base = quality(Xs)
    out = {}
    for j, name in enumerate(FEATURE_NAMES):  # each predict_scores call picks its threads
        drops = []
        for _ in range(repeats):
            shuffled = Xs.copy()
            shuffled[:, j] = rng.permutation(shuffled[:, j])
            drops.append(base - quality(shuffled))
        out[name] = round(float(np.mean(drops)), 6)
    return out


# -- training ------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """A fitted model with its held-out evaluation: what a ModelRun records."""

    kind: ScoreKind
    model: Pipeline
    metrics: dict[str, Any]
    baseline: dict[str, Any]
    importances: dict[str, float]
    window: dict[str, float]
    n_train: int
    n_test: int
    extra: dict[str, Any] = field(default_factory=dict)


def train_time_split(
    orders: OrderTable,
    *,
    kind: ScoreKind,
    train_cutoff: float,
    test_cutoff: float,
    horizon_days: float,
    random_state: int = 0,
) -> TrainResult:
    """Fit on features as of `train_cutoff` with labels from the horizon after it, evaluate on
    features as of `test_cutoff` with labels after that. Requires train_cutoff + horizon <=
    test_cutoff so the training labels end before the evaluation starts (no leak)."""
    if train_cutoff + horizon_days > test_cutoff + 1e-9:
        raise ValueError("the training labels must end before the test cutoff")
    X_train = order_features(orders, as_of=train_cutoff)
    y_train = order_labels(orders, cutoff=train_cutoff, horizon_days=horizon_days, kind=kind)
    keep = population(orders, as_of=train_cutoff, kind=kind)
    X_train, y_train = X_train[keep], y_train[keep]
    X_test = order_features(orders, as_of=test_cutoff)
    y_test = order_labels(orders, cutoff=test_cutoff, horizon_days=horizon_days, kind=kind)
    keep = population(orders, as_of=test_cutoff, kind=kind)
    X_test, y_test = X_test[keep], y_test[keep]
    if len(X_train) < 10 or (kind in CLASSIFIERS and len(np.unique(y_train)) < 2):
        raise ValueError("not enough customers or only one outcome before the training cutoff")
    with _one_thread_if_small(len(X_train)):
        model = make_model(kind, random_state=random_state).fit(X_train, y_train)
    pred = predict_scores(model, X_test, kind=kind)
    if kind in CLASSIFIERS:
        metrics = classifier_metrics(y_test, pred)
        base = classifier_metrics(y_test, recency_baseline(X_test, kind=kind))
        baseline = {"name": "recency", "roc_auc": base["roc_auc"], "brier": base["brier"]}
    else:
        metrics = regression_metrics(y_test, pred)
        # Baseline: this customer's spend in the last horizon-length window repeats.
        naive = X_test[:, FEATURE_NAMES.index("monetary_90d")] * (horizon_days / 90.0)
        baseline = {"name": "last_90d_spend", **regression_metrics(y_test, naive)}
    importances = feature_importances(model, X_test, y_test, kind=kind, random_state=random_state)
    return TrainResult(
        kind=kind,
        model=model,
        metrics=metrics,
        baseline=baseline,
        importances=importances,
        window={
            "train_cutoff": train_cutoff,
            "test_cutoff": test_cutoff,
            "horizon_days": horizon_days,
        },
        n_train=len(X_train),
        n_test=len(X_test),
    )
