"""Clustering runs over real features: metrics, personas, assignments, stability, the signed model,
consent gating and validation."""

from __future__ import annotations

import datetime as dt

import pytest

from cdp.api.errors import ApplicationError
from segmentation.ml.storage import ModelSignatureError, model_loads
from segmentation.models import ClusterAssignment, ClusteringRun, CustomerFeatures, RunStatus
from segmentation.services import (
    clustering_model_load,
    clustering_run_create,
    clustering_run_execute,
    derived_data_purge,
    features_compute,
)
from tests.segmentation.online_retail import DATA, grant_profiling, load_events, read_lines

pytestmark = [
    pytest.mark.skipif(not DATA.exists(), reason="Online Retail data not present"),
    pytest.mark.django_db,
]


@pytest.fixture
def retail_features():
    lines = read_lines(lambda customer: customer % 15 == 0)
    customers = load_events(lines)
    grant_profiling(list(customers.values()))
    features_compute(actor="test", as_of=max(x.when for x in lines) + dt.timedelta(days=1))
    return customers


def run_now(**values) -> ClusteringRun:
    run = clustering_run_create(actor="test", enqueue=False, **values)
    result = clustering_run_execute(run_id=run.pk)
    assert result is not None
    return result


def test_clustering_run_records_metrics_personas_and_assignments(retail_features):
    run = run_now(algorithm="kmeans", params={"k_min": 2, "k_max": 5})

    assert run.status == RunStatus.SUCCEEDED and run.progress == 100
    assert run.population == len(retail_features) == CustomerFeatures.objects.count()
    assert 2 <= run.k <= 5 and len(run.metrics["k_scan"]) == 4
    assert 0 < run.metrics["silhouette"] <= 1
    assert run.metrics["calinski_harabasz"] > 0 and run.metrics["davies_bouldin"] > 0
    assert run.sklearn_version and run.metrics["sklearn_version"] == run.sklearn_version
    assert run.stability_ari is None and run.previous_run is None
    assert ClusterAssignment.objects.filter(run=run).count() == run.population
    personas = list(run.personas.all())
    assert len(personas) == run.k and sum(p.size for p in personas) == run.population
    assert len({p.label for p in personas}) == run.k
    assert set(personas[0].medians) == set(run.features)
    assert len(run.projection["x"]) == len(run.projection["cluster"]) == run.population
    stored = clustering_model_load(run=run)
    assert list(stored.feature_names) == run.features


def test_second_run_records_stability_against_the_first(retail_features):
    first = run_now(algorithm="kmeans", params={"k": 4})
    second = run_now(algorithm="kmeans", params={"k": 4})
    third = run_now(algorithm="gmm", params={"k": 3})

    assert second.previous_run_id == first.pk
    assert second.stability_ari == pytest.approx(1.0)  # same data, same seed
    assert second.stability_shared == first.population
    assert third.previous_run_id == second.pk and third.stability_ari < 1.0


def test_stored_model_refuses_another_key(retail_features):
    run = run_now(algorithm="kmeans", params={"k": 3})

    with pytest.raises(ModelSignatureError):
        model_loads(bytes(run.model), key=b"another key of sufficient length")


def test_withdrawn_customer_leaves_features_and_assignments_and_later_runs(retail_features):
    run = run_now(algorithm="kmeans", params={"k": 3})
    gone = next(iter(retail_features.values()))

    derived_data_purge(gone, "profiling")
    later = run_now(algorithm="kmeans", params={"k": 3})

    assert not CustomerFeatures.objects.filter(customer_id=gone).exists()
    assert not ClusterAssignment.objects.filter(customer_id=gone).exists()
    assert later.population == run.population - 1


def test_other_purposes_leave_features_alone(retail_features):
    kept = next(iter(retail_features.values()))

    derived_data_purge(kept, "marketing")

    assert CustomerFeatures.objects.filter(customer_id=kept).exists()


@pytest.mark.parametrize(
    ("values", "code"),
    [
        ({"algorithm": "spectral"}, "clustering_algorithm_unknown"),
        ({"features": ["favourite_category"]}, "clustering_feature_unknown"),
        ({"features": ["monetary; DROP TABLE x"]}, "clustering_feature_unknown"),
        ({"features": ["monetary", "monetary"]}, "clustering_feature_repeated"),
        ({"params": {"k": 0}}, "clustering_params_invalid"),
        ({"params": {"n_clusters": 3}}, "clustering_params_invalid"),
        ({"params": {"k": [1]}}, "clustering_params_invalid"),
    ],
)
def test_invalid_configuration_is_refused_before_queueing(values, code):
    with pytest.raises(ApplicationError) as caught:
        clustering_run_create(actor="test", enqueue=False, **values)

    assert caught.value.code == code
    assert not ClusteringRun.objects.exists()


def test_run_without_features_fails_with_a_reason():
    with pytest.raises(ApplicationError):
        run_now(algorithm="kmeans")

    run = ClusteringRun.objects.get()
    assert run.status == RunStatus.FAILED and "at least" in run.error
