import json

import numpy as np
import pytest
import sklearn
from sklearn.metrics import adjusted_rand_score

from segmentation.ml.cluster import cluster_metrics, run_clustering, stability


@pytest.mark.parametrize("algorithm", ["kmeans", "minibatch_kmeans", "agglomerative"])
def test_silhouette_scan_chooses_the_true_k_on_blobs(blobs, algorithm):
    X, y = blobs

    result = run_clustering(X, algorithm=algorithm, params={"k_min": 2, "k_max": 6}, random_state=0)

    assert result.k == 4
    assert [row["k"] for row in result.metrics["k_scan"]] == [2, 3, 4, 5, 6]
    best = max(result.metrics["k_scan"], key=lambda row: row["silhouette"])
    assert best["k"] == 4
    assert adjusted_rand_score(y, result.labels) == 1.0
    assert result.centers.shape == (4, 3)


def test_gmm_bic_scan_chooses_the_true_k_on_blobs(blobs):
    X, y = blobs

    result = run_clustering(X, algorithm="gmm", params={"k_min": 2, "k_max": 6}, random_state=0)

    assert result.k == 4
    bic = {row["k"]: row["bic"] for row in result.metrics["k_scan"]}
    assert min(bic, key=bic.get) == 4
    assert adjusted_rand_score(y, result.labels) == 1.0


def test_metrics_are_sane_on_well_separated_blobs(blobs):
    X, _ = blobs

    metrics = run_clustering(X, algorithm="kmeans", params={"k": 4}, random_state=0).metrics

    assert 0.7 < metrics["silhouette"] <= 1.0
    assert metrics["silhouette_sample"] == 600
    assert metrics["calinski_harabasz"] > 1000
    assert 0 < metrics["davies_bouldin"] < 0.5
    assert metrics["noise"] == 0
    assert metrics["k_scan"] == []
    assert metrics["sklearn_version"] == sklearn.__version__
    assert metrics["estimator"] == "KMeans"
    assert set(metrics["timings"]) == {"fit_s", "metrics_s"}
    assert metrics["n"] == 600 and metrics["n_features"] == 3
    assert json.loads(json.dumps(metrics)) == metrics  # storable as a JSON field as it is


@pytest.mark.parametrize(
    ("algorithm", "params"),
    [
        ("kmeans", {"k": 3}),
        ("minibatch_kmeans", {"k": 3}),
        ("gmm", {"k": 3, "covariance_type": "diag"}),
        ("dbscan", {"eps": 0.8, "min_samples": 5}),
        ("hdbscan", {"min_cluster_size": 20}),
        ("agglomerative", {"k": 3, "linkage": "average"}),
    ],
)
def test_each_algorithm_labels_every_row(blobs, algorithm, params):
    X, _ = blobs

    result = run_clustering(X, algorithm=algorithm, params=params, random_state=0)

    assert result.labels.shape == (600,)
    assert result.k == len(set(result.labels.tolist()) - {-1})
    assert result.metrics["algorithm"] == algorithm
    assert result.metrics["params"] == dict(sorted(params.items()))


def test_density_algorithms_find_the_blobs_and_report_noise(blobs):
    X, _ = blobs

    hdb = run_clustering(X, algorithm="hdbscan", params={"min_cluster_size": 20}, random_state=0)
    db = run_clustering(X, algorithm="dbscan", params={"eps": 1.0}, random_state=0)

    assert hdb.k == 4 and db.k == 4
    assert hdb.centers is None
    assert db.metrics["noise"] == int((db.labels == -1).sum())


def test_kmeans_switches_to_minibatch_above_the_threshold(blobs):
    X, _ = blobs

    result = run_clustering(
        X, algorithm="kmeans", params={"k": 4, "minibatch_threshold": 500}, random_state=0
    )

    assert result.metrics["estimator"] == "MiniBatchKMeans"
    assert result.k == 4


def test_agglomerative_on_a_sample_assigns_the_rest_to_the_nearest_centroid(blobs):
    X, y = blobs

    result = run_clustering(
        X, algorithm="agglomerative", params={"k": 4, "agglomerative_sample": 100}, random_state=0
    )

    assert result.labels.shape == (600,)
    assert adjusted_rand_score(y, result.labels) == 1.0
    np.testing.assert_array_equal(result.model.predict(X), result.labels)


def test_runs_are_deterministic_for_a_random_state(blobs):
    X, _ = blobs

    a = run_clustering(X, algorithm="minibatch_kmeans", params={"k": 5}, random_state=3)
    b = run_clustering(X, algorithm="minibatch_kmeans", params={"k": 5}, random_state=3)

    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.metrics["silhouette"] == b.metrics["silhouette"]


def test_metrics_are_skipped_with_fewer_than_two_clusters():
    X = np.random.default_rng(0).normal(size=(50, 2))

    result = run_clustering(X, algorithm="dbscan", params={"eps": 100.0}, random_state=0)

    assert result.k == 1
    assert result.metrics["silhouette"] is None
    assert result.metrics["calinski_harabasz"] is None
    assert result.metrics["davies_bouldin"] is None


def test_metrics_leave_noise_out():
    X = np.array([[0.0], [0.1], [10.0], [10.1], [55.0]])
    labels = np.array([0, 0, 1, 1, -1])

    metrics = cluster_metrics(X, labels)

    assert metrics["noise"] == 1
    # Each point is 0.1 from its partner; the nearer other cluster is 10.05 or 9.95 away on
    # average (0.0 and 10.1 on the outside, 0.1 and 10.0 on the inside); the point at 55 is
    # noise and takes no part.
    outer, inner = 1 - 0.1 / 10.05, 1 - 0.1 / 9.95
    assert metrics["silhouette"] == pytest.approx((outer + inner) / 2, abs=1e-12)
    assert metrics["silhouette_sample"] == 4


def test_unknown_algorithm_or_param_is_refused(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="unknown algorithm"):
        run_clustering(X, algorithm="spectral", params={}, random_state=0)
    with pytest.raises(ValueError, match="unknown params"):
        run_clustering(X, algorithm="dbscan", params={"k": 3}, random_state=0)
    with pytest.raises(ValueError, match="k range"):
        run_clustering(X, algorithm="kmeans", params={"k_min": 1}, random_state=0)
    with pytest.raises(ValueError, match="finite"):
        run_clustering(np.array([[0.0], [np.nan]]), algorithm="kmeans", params={"k": 1})


def test_stability_is_one_for_the_same_partition_under_other_label_names():
    ids = np.arange(100)
    labels = np.repeat([0, 1, 2, 3], 25)

    assert stability(ids, labels, ids[::-1], (labels[::-1] + 1) % 4) == 1.0


def test_stability_drops_for_shuffled_labels():
    rng = np.random.default_rng(0)
    ids = np.arange(400)
    labels = np.repeat([0, 1, 2, 3], 100)

    score = stability(ids, labels, ids, rng.permutation(labels))

    assert score < 0.1


def test_stability_uses_only_ids_present_in_both_runs():
    prev_ids = np.array(["a", "b", "c", "d", "gone"])
    prev_labels = np.array([0, 0, 1, 1, 0])
    ids = np.array(["d", "c", "b", "a", "new"])
    labels = np.array([7, 7, 3, 3, 7])

    assert stability(prev_ids, prev_labels, ids, labels) == 1.0
    assert np.isnan(stability(prev_ids, prev_labels, np.array(["x"]), np.array([0])))


def test_calinski_harabasz_and_davies_bouldin_use_a_seeded_sample_when_large(blobs):
    X, _ = blobs
    labels = run_clustering(X, algorithm="kmeans", params={"k": 4}, random_state=0).labels

    sampled = cluster_metrics(X, labels, metrics_sample=200, silhouette_sample=100)
    again = cluster_metrics(X, labels, metrics_sample=200, silhouette_sample=100)
    full = cluster_metrics(X, labels)

    assert sampled["metrics_sample"] == 200 and sampled["silhouette_sample"] == 100
    assert full["metrics_sample"] == 600
    assert sampled == again
    assert sampled["davies_bouldin"] == pytest.approx(full["davies_bouldin"], rel=0.2)


def test_stability_from_contingency_equals_adjusted_rand_score():
    from sklearn.metrics import adjusted_rand_score

    from segmentation.ml.cluster import stability_from_contingency

    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.integers(0, rng.integers(1, 6), 500)
        b = np.where(rng.random(500) < 0.7, a, rng.integers(-1, 4, 500))
        table = np.zeros((a.max() + 2, b.max() + 2))
        np.add.at(table, (a + 1, b + 1), 1)

        assert stability_from_contingency(table) == pytest.approx(adjusted_rand_score(a, b))
    assert np.isnan(stability_from_contingency(np.array([[1.0]])))
