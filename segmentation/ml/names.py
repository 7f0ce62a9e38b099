"""Names, thresholds and checks of the ML core that need no NumPy, SciPy or scikit-learn.

Django reads these at start-up and on hot paths (admin forms, API serializers, run validation,
recommendation serving, the RFM grid the feature SQL embeds). Importing scikit-learn and SciPy
costs every web worker, management command and Celery worker about 1.7 s (5 s cold), so the
numeric modules are imported only by the code that fits, scores or loads a model. Each name is
re-exported by the module that computes with it (`cluster.ALGORITHMS`, `recommend.Strategy`,
`personas.rfm_segment`, ...), so either import works.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

# -- clustering (segmentation.ml.cluster) ----------------------------------------------------

ALGORITHMS = ("kmeans", "minibatch_kmeans", "gmm", "dbscan", "hdbscan", "agglomerative")

ALGORITHM_PARAMS: dict[str, frozenset[str]] = {
    "kmeans": frozenset(
        {"k", "k_min", "k_max", "n_init", "max_iter", "minibatch_threshold", "batch_size"}
    ),
    "minibatch_kmeans": frozenset({"k", "k_min", "k_max", "n_init", "max_iter", "batch_size"}),
    "gmm": frozenset({"k", "k_min", "k_max", "covariance_type", "max_iter"}),
    "dbscan": frozenset({"eps", "min_samples"}),
    "hdbscan": frozenset({"min_cluster_size", "min_samples"}),
    "agglomerative": frozenset({"k", "k_min", "k_max", "linkage", "agglomerative_sample"}),
}
COMMON_PARAMS = frozenset({"silhouette_sample", "scan_sample", "metrics_sample"})


def check_params(algorithm: str, params: Mapping[str, Any]) -> None:
    """Raise ValueError for an unknown algorithm, unknown params or k < 1, without fitting:
    what a run's configuration is checked with before it is queued."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {ALGORITHMS}")
    unknown = set(params) - ALGORITHM_PARAMS[algorithm] - COMMON_PARAMS
    if unknown:
        raise ValueError(f"unknown params for {algorithm}: {sorted(unknown)}")
    if "k" in params and int(params["k"]) < 1:
        raise ValueError("k must be at least 1")


# -- personas and RFM (segmentation.ml.personas) ---------------------------------------------

RFM_SEGMENTS = (
    "Champions",
    "Loyal",
    "Potential loyalist",
    "New customers",
    "Promising",
    "Need attention",
    "About to sleep",
    "At risk",
    "Can't lose them",
    "Hibernating",
    "Lost",
)

# RF_GRID[r - 1][f - 1]
RF_GRID: tuple[tuple[str, ...], ...] = (
    ("Lost", "Hibernating", "At risk", "At risk", "Can't lose them"),
    ("Hibernating", "Hibernating", "At risk", "At risk", "Can't lose them"),
    ("About to sleep", "About to sleep", "Need attention", "Loyal", "Loyal"),
    ("Promising", "Potential loyalist", "Potential loyalist", "Loyal", "Loyal"),
    ("New customers", "Potential loyalist", "Potential loyalist", "Champions", "Champions"),
)


def rfm_segment(r: int, f: int) -> str:
    """The segment name for one R and F score pair (1..5 each)."""
    if not (1 <= r <= 5 and 1 <= f <= 5):
        raise ValueError("R and F scores run from 1 to 5")
    return RF_GRID[r - 1][f - 1]


# -- recommendations (segmentation.ml.recommend) ---------------------------------------------


class Strategy(enum.StrEnum):
    ITEM_KNN = "item_knn"
    ALS = "als"
    POPULARITY = "popularity"


# Stored recommenders pickle their strategy by reference: keep naming the module that defined
# it before this one (it re-exports it), so model files stay byte-for-byte what they were.
Strategy.__module__ = "segmentation.ml.recommend"

# Interaction weights by event name: a purchase says more than a view.
EVENT_WEIGHTS: dict[str, float] = {
    "Order Completed": 3.0,
    "Product Added": 2.0,
    "Product Viewed": 1.0,
}

# -- drift (segmentation.ml.drift) -----------------------------------------------------------

ALERT_THRESHOLD = 0.25
