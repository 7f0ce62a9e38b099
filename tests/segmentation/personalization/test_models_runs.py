"""Model runs on the database: consent-gated training and scoring, signed storage, drift."""

from __future__ import annotations

import numpy as np
import pytest

from cdp.audit.models import AuditEntry
from consent.hooks import withdrawal_hooks_run
from segmentation.ml.storage import FORMAT_VERSION, model_loads
from segmentation.personalization.models import (
    Assignment,
    CustomerScore,
    DriftAlert,
    DriftReport,
    Experiment,
    ModelInventory,
    ModelRun,
    Recommendation,
    RunStatus,
)
from segmentation.personalization.selectors import customer_score_explanations
from segmentation.personalization.services import (
    drift_reports_create,
    experiment_expose,
    model_run_create,
    model_run_execute,
)
from segmentation.services import model_signing_key
from tests.segmentation.personalization.conftest import AS_OF
from tests.segmentation.segments.conftest import grant

pytestmark = pytest.mark.django_db


def run_kind(kind: str, **params) -> ModelRun:
    run = model_run_create(
        kind=kind, actor="test", params={"as_of": AS_OF.isoformat(), **params}, enqueue=False
    )
    return model_run_execute(run_id=run.pk)


def test_score_run_scores_only_customers_allowed_for_profiling(shop):
    run = run_kind("propensity")

    assert run.status == RunStatus.SUCCEEDED, run.error
    scored = set(
        CustomerScore.objects.filter(kind="propensity").values_list("customer_id", flat=True)
    )
    assert scored == {c.pk for c in shop["consented"]}  # the newcomer has no history yet
    assert shop["outsider"].pk not in scored
    assert run.population == 25 and run.scored == 24
    assert {"roc_auc", "precision", "recall", "f1", "brier", "calibration"} <= set(run.metrics)
    assert run.baseline["name"] == "recency"
    assert set(run.importances) >= {"recency_days", "frequency"}
    assert run.window["horizon_days"] == 30
    assert run.window["test_cutoff"] < run.window["as_of"]
    assert run.format_version == FORMAT_VERSION
    stored = model_loads(bytes(run.model), key=model_signing_key())
    assert stored.metadata == {"run": str(run.pk), "kind": "propensity"}
    scores = CustomerScore.objects.filter(kind="propensity").values_list("score", flat=True)
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_scores_only_customers_with_a_past_order(shop):
    run = run_kind("churn", horizon_days=30)

    scored = set(CustomerScore.objects.filter(kind="churn").values_list("customer_id", flat=True))
    assert scored == {c.pk for c in shop["consented"]}
    assert run.scored == 24


def test_expected_spend_run_records_regression_metrics(shop):
    run = run_kind("expected_spend")

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert set(run.metrics) == {"rmse", "mae", "r2", "n"}


def test_running_twice_is_harmless(shop):
    run = run_kind("propensity")

    again = model_run_execute(run_id=run.pk)

    assert again.finished_at == run.finished_at
    assert CustomerScore.objects.filter(kind="propensity").count() == 24


def test_rescoring_drops_customers_no_longer_allowed(shop):
    run_kind("propensity")
    leaving = shop["consented"][0]
    grant([leaving], "profiling", granted=False)

    second = run_kind("propensity")

    assert not CustomerScore.objects.filter(customer=leaving).exists()
    assert second.removed == 1


def test_a_run_without_data_fails_with_a_reason(db, purposes):
    run = model_run_create(kind="churn", actor="test", enqueue=False)

    with pytest.raises(ValueError):
        model_run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("ValueError: not enough customers")


def test_second_run_reports_drift_and_alerts_past_the_threshold(shop):
    first = run_kind("propensity")
    second = run_kind("propensity")
    reports = {r.variable: r for r in DriftReport.objects.filter(run=second)}
    assert set(reports) >= {"score", "recency_days"}
    assert reports["score"].previous_run_id == first.pk
    assert reports["score"].psi == pytest.approx(0.0, abs=1e-9)
    assert not DriftAlert.objects.exists()

    shifted = {k: list(np.array(v) + 1000.0) for k, v in second.reference.items()}
    ModelRun.objects.filter(pk=second.pk).update(reference=shifted)
    second.refresh_from_db()
    drift_reports_create(run=second)

    alerted = set(DriftAlert.objects.values_list("report__variable", flat=True))
    past = set(
        DriftReport.objects.filter(run=second, psi__gt=0.25).values_list("variable", flat=True)
    )
    assert alerted == past and {"score", "recency_days", "monetary"} <= alerted
    entries = AuditEntry.objects.filter(action="personalization.drift.alert")
    assert entries.count() == len(alerted)


def test_withdrawal_removes_scores_recommendations_and_assignments(shop):
    run_kind("propensity")
    run_kind("recommendations")
    who = shop["consented"][1]
    experiment = Experiment.objects.create(key="recs", name="recs", target="recommendations")
    experiment.variants.create(name="control")
    experiment_expose(experiment=experiment, customer_id=who.pk)
    assert Recommendation.objects.filter(customer=who).exists()

    grant([who], "personalization", granted=False)
    withdrawal_hooks_run(who.pk, "personalization")

    assert not Recommendation.objects.filter(customer=who).exists()
    assert not Assignment.objects.filter(customer=who).exists()
    assert CustomerScore.objects.filter(customer=who).exists()  # profiling still granted

    grant([who], "profiling", granted=False)
    withdrawal_hooks_run(who.pk, "profiling")
    withdrawal_hooks_run(who.pk, "profiling")  # idempotent

    assert not CustomerScore.objects.filter(customer=who).exists()
    assert CustomerScore.objects.filter(customer=shop["consented"][2]).exists()


def test_erasure_cascade_removes_scores(shop):
    run_kind("propensity")
    who = shop["consented"][3]

    type(who).objects.filter(pk=who.pk).delete()

    assert not CustomerScore.objects.filter(customer_id=who.pk).exists()


def test_inventory_explains_a_customers_scores(shop):
    run_kind("churn", horizon_days=30)
    assert set(ModelInventory.objects.values_list("kind", flat=True)) == {
        "churn",
        "propensity",
        "expected_spend",
        "recommendations",
    }

    explained = customer_score_explanations(shop["consented"][0].pk)

    assert [e["kind"] for e in explained] == ["churn"]
    assert explained[0]["model"] == "Churn risk"
    assert "number of orders" in explained[0]["inputs"]


def test_recommendation_run_evaluates_against_popularity_and_stores_top_items(shop):
    run = run_kind("recommendations")

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert {"model", "popularity", "fallback"} <= set(run.metrics)
    assert run.metrics["model"]["users"] > 0
    assert set(run.metrics["model"]) == {"precision", "map", "ndcg", "users", "k"}
    who = shop["consented"][0]  # taste group A
    items = Recommendation.objects.get(customer=who).items
    assert len(items) == 10
    assert all(i["item"].startswith("A") for i in items[:5])
    assert not Recommendation.objects.filter(customer=shop["outsider"]).exists()


def test_withdrawal_of_another_purpose_leaves_everything(shop):
    run_kind("propensity")
    who = shop["consented"][4]
    grant([who], "profiling", granted=False)

    withdrawal_hooks_run(who.pk, "marketing")

    assert CustomerScore.objects.filter(customer=who).exists()
