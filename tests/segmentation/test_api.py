"""Clustering runs over the REST API: scopes, starting a run that a real worker executes, status
and personas, validation errors in the standard shape, and a paginated list."""

from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from cdp.api.services import api_token_create
from segmentation.models import ClusteringRun, RunStatus
from tests.segmentation.online_retail import DATA, clustered_run

pytestmark = pytest.mark.skipif(not DATA.exists(), reason="Online Retail data not present")


def token_client(*scopes: str) -> APIClient:
    _, token = api_token_create(name="partner", scopes=list(scopes), actor="system")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("scopes", "post_status", "get_status"),
    [
        (("segmentation:read", "segmentation:write"), 202, 200),
        (("segmentation:read",), 403, 200),
        (("consent:read",), 403, 403),
    ],
)
def test_clustering_api_needs_the_scopes(scopes, post_status, get_status):
    client = token_client(*scopes)

    posted = client.post("/api/v1/clustering-runs/", {"params": {"k": 2}}, format="json")
    listed = client.get("/api/v1/clustering-runs/")

    assert posted.status_code == post_status
    assert listed.status_code == get_status
    assert ClusteringRun.objects.count() == (1 if post_status == 202 else 0)


@pytest.mark.django_db
def test_anonymous_callers_are_refused():
    response = APIClient().post("/api/v1/clustering-runs/", {}, format="json")

    assert response.status_code in (401, 403)
    assert not ClusteringRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"algorithm": "spectral"}, "algorithm"),
        ({"features": ["email"]}, "features"),
        ({"params": {"eps": 0.5}}, "params"),  # k-means takes no eps
    ],
)
def test_invalid_runs_are_refused_in_the_error_shape(body, field):
    client = token_client("segmentation:write")

    response = client.post("/api/v1/clustering-runs/", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not ClusteringRun.objects.exists()


@pytest.mark.django_db
def test_status_shows_metrics_and_personas_of_a_finished_run():
    run = clustered_run()
    client = token_client("segmentation:read")

    body = client.get(f"/api/v1/clustering-runs/{run.pk}/").json()
    missing = client.get("/api/v1/clustering-runs/00000000-0000-0000-0000-000000000000/")

    assert body["status"] == "succeeded" and body["progress"] == 100
    assert body["population"] == run.population and body["k"] == 3
    assert body["metrics"]["silhouette"] == run.metrics["silhouette"]
    assert [p["size"] for p in body["personas"]] == sorted(
        (p["size"] for p in body["personas"]), reverse=True
    )
    assert sum(p["size"] for p in body["personas"]) == run.population
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "clustering_run_unknown"


@pytest.fixture
def ledger_emptied_after(transactional_db):
    """Transactional tests: empty the append-only ledger and audit log before the flush."""
    from consent.testing import consent_ledger_clear_for_tests

    yield
    consent_ledger_clear_for_tests()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_run_started_over_the_api_completes_on_a_real_worker(
    ledger_emptied_after, celery_worker_process
):
    run = clustered_run()  # features in place (and one finished run for stability)
    client = token_client("segmentation:read", "segmentation:write")

    started = client.post(
        "/api/v1/clustering-runs/",
        {"algorithm": "kmeans", "params": {"k": 3}, "name": "from the api"},
        format="json",
    ).json()
    deadline = time.monotonic() + 60
    body = started
    while body["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.3)
        body = client.get(f"/api/v1/clustering-runs/{started['id']}/").json()

    assert started["status"] == "queued"
    assert body["status"] == RunStatus.SUCCEEDED, body["error"]
    assert body["stability_ari"] == pytest.approx(1.0)  # same features, same k, same seed
    assert ClusteringRun.objects.get(pk=started["id"]).previous_run_id == run.pk
