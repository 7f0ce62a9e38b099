"""Clustering algorithms behind one entry point, with the metrics a run records.

`run_clustering` takes the preprocessed matrix. Algorithms and their `params`:

- `kmeans`: `k`, or `k_min`/`k_max` (default 2..8) scanned by silhouette on a sample. Above
  `minibatch_threshold` rows (default 100,000) it runs as mini-batch k-means.
- `minibatch_kmeans`: the same, always mini-batch (`batch_size`, default 4096).
- `gmm`: Gaussian mixture, `k` or a range scanned by BIC (lowest wins); `covariance_type`.
- `dbscan`: `eps` (0.5), `min_samples` (5). Label -1 is noise.
- `hdbscan`: `min_cluster_size` (5), `min_samples`. Label -1 is noise.
- `agglomerative`: `k` or a range scanned by silhouette, `linkage` (ward); fitted on a sample of
  at most `agglomerative_sample` rows (5,000) because it is quadratic, then every row goes to the
  nearest centroid of the sample's clusters.

Scans fit on a seeded sample of at most `scan_sample` rows (20,000) and the final model on all
rows. Silhouette is always on a seeded sample (`silhouette_sample`, 5,000) because it is quadratic;
Calinski-Harabasz and Davies-Bouldin on a seeded sample of at most `metrics_sample` rows (200,000),
which pins them to well under 1% while keeping a run's bookkeeping small next to the fit. Noise
points (label -1) are left out of the metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sklearn
from sklearn.cluster import DBSCAN, HDBSCAN, AgglomerativeClustering, KMeans, MiniBatchKMeans
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_score,
)
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestCentroid

from segmentation.ml._sample import sample_indices
from segmentation.ml.names import ALGORITHMS, check_params

DEFAULT_K_RANGE = (2, 8)
MINIBATCH_THRESHOLD = 100_000
SCAN_SAMPLE = 20_000
SILHOUETTE_SAMPLE = 5_000
METRICS_SAMPLE = 200_000
AGGLOMERATIVE_SAMPLE = 5_000
NOISE = -1


@dataclass
class ClusteringResult:
    """Labels for every input row (-1 = noise), the number of clusters, centres when the
    algorithm has them, JSON-ready metrics, and the fitted model for storage. The model assigns
    new rows with `predict` for k-means, mini-batch k-means, Gaussian mixtures and agglomerative
    (its nearest-centroid assigner); DBSCAN and HDBSCAN models cannot assign new rows."""

    labels: np.ndarray
    k: int
    centers: np.ndarray | None
    metrics: dict[str, Any]
    model: Any = field(repr=False)


def run_clustering(
    X: np.ndarray,
    *,
    algorithm: str,
    params: Mapping[str, Any] | None = None,
    random_state: int = 0,
) -> ClusteringResult:
    """Cluster the rows of the preprocessed matrix `X` and measure the result.

    Deterministic for a given `random_state`. Unknown algorithms or params raise ValueError, so a
    mistyped run configuration fails before any work is done.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {ALGORITHMS}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError("X must be 2-D with at least 2 rows")
    if not np.isfinite(X).all():
        raise ValueError("X must be finite: run it through the preprocessing pipeline first")
    p = dict(params or {})
    check_params(algorithm, p)
    started = time.perf_counter()
    fit, scan, estimator_name = _FITTERS[algorithm](X, p, random_state)
    fitted = time.perf_counter()
    labels, centers, model = fit
    labels = np.asarray(labels, dtype=np.int64)
    k = _cluster_count(labels)
    metrics = cluster_metrics(
        X,
        labels,
        random_state=random_state,
        silhouette_sample=int(p.get("silhouette_sample", SILHOUETTE_SAMPLE)),
        metrics_sample=int(p.get("metrics_sample", METRICS_SAMPLE)),
    )
    metrics.update(
        {
            "algorithm": algorithm,
            "estimator": estimator_name,
            "params": {key: _jsonable(value) for key, value in sorted(p.items())},
            "random_state": random_state,
            "n": int(X.shape[0]),
            "n_features": int(X.shape[1]),
            "k": k,
            "k_scan": scan,
            "sklearn_version": sklearn.__version__,
            "timings": {
                "fit_s": round(fitted - started, 4),
                "metrics_s": round(time.perf_counter() - fitted, 4),
            },
        }
    )
    return ClusteringResult(labels=labels, k=k, centers=centers, metrics=metrics, model=model)


def cluster_metrics(
    X: np.ndarray,
    labels: np.ndarray,
    *,
    random_state: int = 0,
    silhouette_sample: int = SILHOUETTE_SAMPLE,
    metrics_sample: int = METRICS_SAMPLE,
) -> dict[str, Any]:
    """Silhouette (sampled), Calinski-Harabasz and Davies-Bouldin over the non-noise rows;
    None for each when fewer than 2 clusters remain (the scores are undefined there)."""
    keep = labels != NOISE
    noise = int(len(labels) - np.count_nonzero(keep))
    Xk, lk = (X[keep], labels[keep]) if noise else (X, labels)  # no copy without noise
    out: dict[str, Any] = {
        "noise": noise,
        "silhouette": None,
        "silhouette_sample": 0,
        "metrics_sample": 0,
        "calinski_harabasz": None,
        "davies_bouldin": None,
    }
    n_clusters = _cluster_count(lk)
    if n_clusters < 2 or n_clusters >= len(lk):
        return out
    idx = sample_indices(len(lk), silhouette_sample, random_state)
    if 2 <= _cluster_count(lk[idx]) < len(idx):
        out["silhouette"] = float(silhouette_score(Xk[idx], lk[idx]))
        out["silhouette_sample"] = len(idx)
    idx = sample_indices(len(lk), metrics_sample, random_state)
    Xm, lm = (Xk[idx], lk[idx]) if len(idx) < len(lk) else (Xk, lk)
    if 2 <= _cluster_count(lm) < len(lm):
        out["calinski_harabasz"] = float(calinski_harabasz_score(Xm, lm))
        out["davies_bouldin"] = float(davies_bouldin_score(Xm, lm))
        out["metrics_sample"] = len(lm)
    return out


def _cluster_count(labels: np.ndarray) -> int:
    """Distinct non-noise labels, in O(n) (labels are small non-negative ints or -1)."""
    if labels.size == 0:
        return 0
    return int(np.count_nonzero(np.bincount(np.asarray(labels, dtype=np.int64) + 1)[1:]))


def stability(
    prev_ids: np.ndarray, prev_labels: np.ndarray, ids: np.ndarray, labels: np.ndarray
) -> float:
    """Adjusted Rand index between two runs on the ids present in both (1.0 = same partition,
    ~0 = chance), NaN when fewer than two ids are shared. Ids are unique within a run."""
    prev = dict(zip(np.asarray(prev_ids).tolist(), np.asarray(prev_labels).tolist(), strict=True))
    a: list[Any] = []
    b: list[Any] = []
    for i, label in zip(np.asarray(ids).tolist(), np.asarray(labels).tolist(), strict=True):
        if i in prev:
            a.append(prev[i])
            b.append(label)
    if len(a) < 2:
        return float("nan")
    return float(adjusted_rand_score(a, b))


def stability_from_contingency(table: np.ndarray) -> float:
    """Adjusted Rand index from a contingency table (rows: previous clusters, columns: current,
    cells: customers in both), the same value as `adjusted_rand_score` on the paired labels.
    The database counts the pairs with one GROUP BY, so a million customers never leave it;
    NaN when fewer than two customers are shared."""
    table = np.asarray(table, dtype=np.float64)
    n = table.sum()
    if n < 2:
        return float("nan")

    def pairs(x: np.ndarray) -> float:
        return float((x * (x - 1) / 2).sum())

    index = pairs(table)
    rows, cols = pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    expected = rows * cols / (n * (n - 1) / 2)
    maximum = (rows + cols) / 2
    if maximum == expected:  # both partitions trivial (one cluster each, or all singletons)
        return 1.0
    return float((index - expected) / (maximum - expected))


# -- algorithms ------------------------------------------------------------------------------

_Fit = tuple[np.ndarray, np.ndarray | None, Any]
_Scan = list[dict[str, Any]]


def _k_candidates(p: dict[str, Any], n: int) -> list[int]:
    if "k" in p:
        return [int(p["k"])]
    low = int(p.get("k_min", DEFAULT_K_RANGE[0]))
    high = min(int(p.get("k_max", DEFAULT_K_RANGE[1])), n - 1)
    if low < 2 or high < low:
        raise ValueError("the k range needs 2 <= k_min <= k_max < number of rows")
    return list(range(low, high + 1))


def _scan(
    X: np.ndarray,
    p: dict[str, Any],
    random_state: int,
    score: Callable[[np.ndarray, int], float],
    *,
    higher_is_better: bool,
    metric: str,
) -> tuple[int, _Scan]:
    """Score each candidate k on a seeded sample; return the best k and the whole scan."""
    candidates = _k_candidates(p, X.shape[0])
    if len(candidates) == 1:
        return candidates[0], []
    idx = sample_indices(X.shape[0], int(p.get("scan_sample", SCAN_SAMPLE)), random_state)
    Xs = X[idx]
    scan = [{"k": k, metric: float(score(Xs, k))} for k in candidates]
    # Ties go to the smaller k: fewer personas are easier to act on.
    if higher_is_better:
        best = max(scan, key=lambda row: (row[metric], -row["k"]))
    else:
        best = min(scan, key=lambda row: (row[metric], row["k"]))
    return int(best["k"]), scan


def _sampled_silhouette(X: np.ndarray, labels: np.ndarray, p: dict[str, Any], rs: int) -> float:
    if len(np.unique(labels)) < 2:
        return -1.0
    idx = sample_indices(X.shape[0], int(p.get("silhouette_sample", SILHOUETTE_SAMPLE)), rs)
    if len(np.unique(labels[idx])) < 2:
        return -1.0
    return float(silhouette_score(X[idx], labels[idx]))


def _kmeans_estimator(
    k: int, p: dict[str, Any], random_state: int, *, minibatch: bool
) -> KMeans | MiniBatchKMeans:
    if minibatch:
        return MiniBatchKMeans(
            n_clusters=k,
            batch_size=int(p.get("batch_size", 4096)),
            n_init=int(p.get("n_init", 3)),
            max_iter=int(p.get("max_iter", 100)),
            random_state=random_state,
        )
    return KMeans(
        n_clusters=k,
        n_init=int(p.get("n_init", 3)),
        max_iter=int(p.get("max_iter", 300)),
        random_state=random_state,
    )


def _fit_kmeans(
    X: np.ndarray, p: dict[str, Any], random_state: int, *, always_minibatch: bool = False
) -> tuple[_Fit, _Scan, str]:
    threshold = int(p.get("minibatch_threshold", MINIBATCH_THRESHOLD))
    minibatch = always_minibatch or X.shape[0] > threshold

    def score(Xs: np.ndarray, k: int) -> float:
        est = _kmeans_estimator(k, p, random_state, minibatch=minibatch)
        return _sampled_silhouette(Xs, est.fit_predict(Xs), p, random_state)

    k, scan = _scan(X, p, random_state, score, higher_is_better=True, metric="silhouette")
    model = _kmeans_estimator(k, p, random_state, minibatch=minibatch)
    labels = model.fit_predict(X)
    return (labels, model.cluster_centers_, model), scan, type(model).__name__


def _fit_minibatch(X: np.ndarray, p: dict[str, Any], random_state: int) -> tuple[_Fit, _Scan, str]:
    return _fit_kmeans(X, p, random_state, always_minibatch=True)


def _gmm_estimator(k: int, p: dict[str, Any], random_state: int) -> GaussianMixture:
    return GaussianMixture(
        n_components=k,
        covariance_type=str(p.get("covariance_type", "full")),
        max_iter=int(p.get("max_iter", 100)),
        random_state=random_state,
    )


def _fit_gmm(X: np.ndarray, p: dict[str, Any], random_state: int) -> tuple[_Fit, _Scan, str]:
    def score(Xs: np.ndarray, k: int) -> float:
        return float(_gmm_estimator(k, p, random_state).fit(Xs).bic(Xs))

    k, scan = _scan(X, p, random_state, score, higher_is_better=False, metric="bic")
    model = _gmm_estimator(k, p, random_state).fit(X)
    return (model.predict(X), model.means_, model), scan, "GaussianMixture"


def _fit_dbscan(X: np.ndarray, p: dict[str, Any], random_state: int) -> tuple[_Fit, _Scan, str]:
    model = DBSCAN(eps=float(p.get("eps", 0.5)), min_samples=int(p.get("min_samples", 5)))
    return (model.fit_predict(X), None, model), [], "DBSCAN"


def _fit_hdbscan(X: np.ndarray, p: dict[str, Any], random_state: int) -> tuple[_Fit, _Scan, str]:
    min_samples = p.get("min_samples")
    model = HDBSCAN(
        min_cluster_size=int(p.get("min_cluster_size", 5)),
        min_samples=None if min_samples is None else int(min_samples),
        copy=True,
    )
    return (model.fit_predict(X), None, model), [], "HDBSCAN"


def _fit_agglomerative(
    X: np.ndarray, p: dict[str, Any], random_state: int
) -> tuple[_Fit, _Scan, str]:
    linkage = str(p.get("linkage", "ward"))

    def fit_labels(Xs: np.ndarray, k: int) -> np.ndarray:
        return AgglomerativeClustering(n_clusters=k, linkage=linkage).fit_predict(Xs)

    def score(Xs: np.ndarray, k: int) -> float:
        return _sampled_silhouette(Xs, fit_labels(Xs, k), p, random_state)

    size = int(p.get("agglomerative_sample", AGGLOMERATIVE_SAMPLE))
    scan_p = {**p, "scan_sample": min(size, int(p.get("scan_sample", SCAN_SAMPLE)))}
    k, scan = _scan(X, scan_p, random_state, score, higher_is_better=True, metric="silhouette")
    name = "AgglomerativeClustering"
    if k == 1:  # one cluster is everyone (and NearestCentroid needs two classes)
        return (
            (np.zeros(X.shape[0], dtype=np.int64), X.mean(axis=0, keepdims=True), None),
            scan,
            name,
        )
    idx = sample_indices(X.shape[0], size, random_state)
    sample_labels = fit_labels(X[idx], k)
    # The sample's clusters become centroids; every row (sampled or not) joins the nearest one,
    # unless the sample is everything, where the tree's own labels stand.
    nearest = NearestCentroid().fit(X[idx], sample_labels)
    labels = sample_labels if len(idx) == X.shape[0] else nearest.predict(X)
    return (labels, nearest.centroids_, nearest), scan, name


_FITTERS: dict[str, Callable[[np.ndarray, dict[str, Any], int], tuple[_Fit, _Scan, str]]] = {
    "kmeans": _fit_kmeans,
    "minibatch_kmeans": _fit_minibatch,
    "gmm": _fit_gmm,
    "dbscan": _fit_dbscan,
    "hdbscan": _fit_hdbscan,
    "agglomerative": _fit_agglomerative,
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value
