"""Segmentation admin pages: an authorization matrix, charts rendered from aggregates only,
runs started through the service, personas renamed with an audit entry."""

from __future__ import annotations

import pytest

from cdp.audit.models import AuditEntry
from cdp.profiles.roles import ANALYST, COMPLIANCE_OFFICER, CONSENT_ADMIN, PLATFORM_ADMIN
from segmentation.models import ClusteringRun, FeatureRun, Persona
from tests.roles import client_for
from tests.segmentation.online_retail import DATA, clustered_run

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not DATA.exists(), reason="Online Retail data not present"),
]


@pytest.fixture
def run():
    return clustered_run()


def pages(run: ClusteringRun) -> dict[str, str]:
    persona = run.personas.first()
    return {
        "runs": "/admin/segmentation/clusteringrun/",
        "run": f"/admin/segmentation/clusteringrun/{run.pk}/change/",
        "start": "/admin/segmentation/clusteringrun/start/",
        "features": "/admin/segmentation/featurerun/",
        "insights": "/admin/segmentation/featurerun/insights/",
        "persona": f"/admin/segmentation/persona/{persona.pk}/change/",
    }


@pytest.mark.parametrize(
    ("role", "status"),
    [
        (PLATFORM_ADMIN, 200),
        (ANALYST, 200),
        (CONSENT_ADMIN, 403),
        (COMPLIANCE_OFFICER, 403),
        (None, 302),
    ],
)
def test_segmentation_pages_per_role(django_user_model, run, role, status):
    client = client_for(django_user_model, role)

    for name, url in pages(run).items():
        response = client.get(url)
        assert response.status_code == status, name
        if status == 200:
            body = response.content.decode()
            customer_ids = run.assignments.values_list("customer_id", flat=True)[:50]
            assert not any(str(c) in body for c in customer_ids), name


def test_run_page_draws_scatter_profiles_and_metrics(django_user_model, run):
    client = client_for(django_user_model, ANALYST)

    body = client.get(pages(run)["run"]).content.decode()

    assert body.count('class="pt"') == run.population  # one dot per customer (small run)
    assert 'id="persona-profiles"' in body and body.count('class="persona-name"') == run.k
    assert 'id="run-metrics"' in body and f"{run.metrics['silhouette']:.3f}" in body


def test_insights_page_draws_the_rfm_grid_and_cohorts(django_user_model, run):
    client = client_for(django_user_model, ANALYST)

    body = client.get(pages(run)["insights"]).content.decode()

    assert body.count('class="cell" data-r=') == 25
    assert 'id="cohort-retention"' in body and "100%" in body  # month 0 of every cohort


def test_analyst_starts_a_run_from_the_form(django_user_model, run):
    client = client_for(django_user_model, ANALYST)

    response = client.post(
        pages(run)["start"],
        {
            "algorithm": "gmm",
            "features": ["recency_days", "frequency", "monetary"],
            "params": '{"k": 2}',
            "random_state": 1,
        },
    )

    new = ClusteringRun.objects.exclude(pk=run.pk).get()
    assert response.status_code == 302 and str(new.pk) in response["Location"]
    assert new.algorithm == "gmm" and new.params == {"k": 2} and new.status == "queued"
    assert AuditEntry.objects.filter(action="segmentation.clustering_run.create").count() == 2


def test_invalid_params_show_the_reason_and_queue_nothing(django_user_model, run):
    client = client_for(django_user_model, ANALYST)

    response = client.post(
        pages(run)["start"],
        {
            "algorithm": "kmeans",
            "features": ["monetary"],
            "params": '{"bogus": 1}',
            "random_state": 0,
        },
    )

    assert response.status_code == 200 and "unknown params" in response.content.decode()
    assert ClusteringRun.objects.count() == 1


def test_analyst_computes_features_from_the_button(django_user_model, run):
    client = client_for(django_user_model, ANALYST)

    response = client.post("/admin/segmentation/featurerun/compute/")

    assert response.status_code == 302
    assert FeatureRun.objects.filter(status="queued").count() == 1


def test_consent_admin_cannot_start_runs(django_user_model, run):
    client = client_for(django_user_model, CONSENT_ADMIN)

    client.post(pages(run)["start"], {"algorithm": "kmeans", "features": ["monetary"]})
    client.post("/admin/segmentation/featurerun/compute/")

    assert ClusteringRun.objects.count() == 1 and FeatureRun.objects.count() == 1


def test_analyst_renames_a_persona_with_an_audit_entry(django_user_model, run):
    client = client_for(django_user_model, ANALYST)
    persona = run.personas.first()

    response = client.post(
        pages(run)["persona"], {"name": "Weekend crafters", "description": "Buy in spring"}
    )

    persona.refresh_from_db()
    assert response.status_code == 302
    assert persona.name == "Weekend crafters" and persona.label != "Weekend crafters"
    assert AuditEntry.objects.filter(action="segmentation.persona.update").count() == 1
    assert Persona.objects.filter(run=run).count() == run.k
