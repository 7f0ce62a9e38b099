"""Admin pages: authorization matrix, metrics and the inline SVG drift charts, rule conflicts,
experiment results; no page shows a customer id or score."""

from __future__ import annotations

import pytest

from cdp.profiles.roles import ANALYST, COMPLIANCE_OFFICER, CONSENT_ADMIN, PLATFORM_ADMIN
from segmentation.personalization.models import (
    DriftReport,
    Experiment,
    ModelRun,
    PersonalizationRule,
)
from segmentation.personalization.services import model_run_create, model_run_execute
from tests.roles import client_for
from tests.segmentation.personalization.conftest import AS_OF

pytestmark = pytest.mark.django_db

PAGES = [
    "/admin/personalization/modelrun/",
    "/admin/personalization/modelinventory/",
    "/admin/personalization/personalizationrule/",
    "/admin/personalization/experiment/",
    "/admin/personalization/driftreport/",
    "/admin/personalization/driftalert/",
]


@pytest.fixture
def two_runs(shop):
    runs = []
    for _ in range(2):
        run = model_run_create(
            kind="propensity", actor="t", params={"as_of": AS_OF.isoformat()}, enqueue=False
        )
        runs.append(model_run_execute(run_id=run.pk))
    return shop, runs


@pytest.mark.parametrize(
    ("role", "status"),
    [
        (None, 302),
        (CONSENT_ADMIN, 403),
        (COMPLIANCE_OFFICER, 403),
        (ANALYST, 200),
        (PLATFORM_ADMIN, 200),
    ],
)
def test_admin_pages_authorization_matrix(django_user_model, db, role, status):
    client = client_for(django_user_model, role)

    assert {page: client.get(page).status_code for page in PAGES} == dict.fromkeys(PAGES, status)


def test_model_run_page_shows_metrics_importances_and_a_drift_chart(django_user_model, two_runs):
    shop, (_, second) = two_runs
    client = client_for(django_user_model, ANALYST)

    html = client.get(f"/admin/personalization/modelrun/{second.pk}/change/").content.decode()

    assert "<svg" in html and "PSI of Purchase propensity run" in html
    assert "roc_auc" in html and "recency_days" in html
    for who in shop["consented"]:
        assert str(who.pk) not in html
    listing = client.get("/admin/personalization/modelrun/").content.decode()
    assert "ROC-AUC" in listing


def test_drift_report_page_draws_the_distribution(django_user_model, two_runs):
    report = DriftReport.objects.get(variable="recency_days")
    client = client_for(django_user_model, ANALYST)

    html = client.get(f"/admin/personalization/driftreport/{report.pk}/change/").content.decode()

    assert "<svg" in html and "recency_days: previous vs current" in html


def test_rule_list_warns_about_conflicts(django_user_model, db):
    PersonalizationRule.objects.create(name="First", priority=5, offer_key="A")
    PersonalizationRule.objects.create(name="Second", priority=5, offer_key="B")
    client = client_for(django_user_model, ANALYST)

    html = client.get("/admin/personalization/personalizationrule/").content.decode()

    assert "Conflict: &#x27;First&#x27; and &#x27;Second&#x27; share priority 5" in html


def test_experiment_page_shows_results(django_user_model, db):
    experiment = Experiment.objects.create(key="x", name="X", target="decision")
    experiment.variants.create(name="control")
    client = client_for(django_user_model, ANALYST)

    html = client.get(f"/admin/personalization/experiment/{experiment.pk}/change/").content.decode()

    assert "uplift vs control" in html and "Sample ratio check" in html


def test_analyst_can_queue_training_from_the_run_list(django_user_model, two_runs):
    client = client_for(django_user_model, ANALYST)
    run = ModelRun.objects.first()

    response = client.post(
        "/admin/personalization/modelrun/",
        {"action": "train_again", "_selected_action": [str(run.pk)]},
    )

    assert response.status_code == 302
    assert ModelRun.objects.filter(status="queued", kind="propensity").count() == 1
