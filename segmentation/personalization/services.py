"""Writes of personalization: model runs (train, score, drift), serving, rules, experiments.

Consent is checked here, not in views: scores are trained on and written for customers
`customers_allowed_for("profiling")` returns, recommendations and decisions only for customers
allowed for "personalization" (others get a 403 ApplicationError with a reason). The withdrawal
hook `personalization_data_purge` removes a customer's scores, recommendations and experiment
assignments as soon as their consent no longer covers them.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from cdp.api.errors import ApplicationError
from cdp.audit.services import audit_record
from segmentation.ml.experiments import HOLDOUT, assign
from segmentation.ml.names import Strategy
from segmentation.personalization import selectors
from segmentation.personalization.models import (
    PURPOSE_OF,
    SCORE_KINDS,
    Assignment,
    CustomerScore,
    DriftAlert,
    DriftReport,
    Experiment,
    ExperimentStatus,
    ExperimentTarget,
    ModelKind,
    ModelRun,
    PersonalizationRule,
    Recommendation,
    RunStatus,
    Variant,
)
from segmentation.services import model_signing_key

if TYPE_CHECKING:
    import numpy as np

    from segmentation.ml.recommend import Recommender

# NumPy, SciPy and scikit-learn (`segmentation.ml`'s numeric modules) are imported inside the
# training, scoring and drift functions, not here: this module loads at start-up in every web,
# management and Celery process (app ready, the serving API), and serving needs none of them.

logger = logging.getLogger(__name__)

DEFAULT_HORIZON = {"churn": 90, "propensity": 30, "expected_spend": 90}
REFERENCE_SAMPLE = 5_000
WRITE_BATCH = 5_000
RECOMMEND_K = 10
HOLDOUT_DAYS = 30
NOT_ALLOWED = "personalization_not_allowed"


def _day(when: dt.datetime) -> float:
    return when.timestamp() / 86_400.0


# -- model runs ------------------------------------------------------------------------------


def model_run_create(
    *, kind: str, actor: str, params: dict[str, Any] | None = None, enqueue: bool = True
) -> ModelRun:
    """Queue a training run of `kind` (audited); the Celery task executes it after commit.
    params: horizon_days, as_of (ISO time; default now), strategy (recommendations)."""
    if kind not in PURPOSE_OF:
        raise ApplicationError(
            "model_kind_unknown", f"unknown model kind {kind!r}", fields={"kind": ["invalid"]}
        )
    with transaction.atomic():
        run = ModelRun.objects.create(
            kind=kind, purpose=PURPOSE_OF[kind], params=params or {}, requested_by=actor[:150]
        )
        audit_record(
            actor=actor,
            action="personalization.model_run.create",
            object_type="personalization.modelrun",
            object_id=str(run.id),
            details={"kind": kind},
        )
        if enqueue:
            from segmentation.personalization.tasks import model_run_execute as task

            run_id = str(run.id)
            transaction.on_commit(lambda: task.delay(run_id))
    return run


def model_run_execute(*, run_id: uuid.UUID) -> ModelRun | None:
    """Train, evaluate, store and score. A finished run is left alone (safe to run twice); a
    failure records the error class and message (never data) and re-raises."""
    run = ModelRun.objects.filter(pk=run_id).first()
    if run is None or run.status == RunStatus.SUCCEEDED:
        return run
    ModelRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, started_at=timezone.now(), error=""
    )
    try:
        if run.kind == ModelKind.RECOMMENDATIONS:
            _recommendations_run(run)
        else:
            _scores_run(run)
    except Exception as exc:
        message = str(exc) if isinstance(exc, ApplicationError | ValueError) else ""
        ModelRun.objects.filter(pk=run.pk).update(
            status=RunStatus.FAILED,
            error=(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)[:500],
            finished_at=timezone.now(),
        )
        raise
    run.refresh_from_db()
    return run


def _as_of(run: ModelRun) -> dt.datetime:
    text = run.params.get("as_of")
    if not text:
        return timezone.now()
    when = dt.datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _scores_run(run: ModelRun) -> None:
    import numpy as np
    import sklearn

    from segmentation.ml import scores as scores_ml
    from segmentation.ml.storage import FORMAT_VERSION, StoredModel, model_dumps

    kind = scores_ml.ScoreKind(run.kind)
    horizon = float(run.params.get("horizon_days", DEFAULT_HORIZON[run.kind]))
    as_of = _as_of(run)
    ids = selectors.allowed_customer_ids(run.purpose)
    index = {cid: i for i, cid in enumerate(ids)}
    rows = [r for r in selectors.order_rows(run.purpose) if r[1] < as_of]
    orders = scores_ml.OrderTable(
        customer=np.array([index[c] for c, _, _ in rows], dtype=np.int64),
        day=np.array([_day(w) for _, w, _ in rows], dtype=np.float64),
        value=np.array([v for _, _, v in rows], dtype=np.float64),
        n_customers=len(ids),
    )
    now_day = _day(as_of)
    test_cutoff = now_day - horizon
    result = scores_ml.train_time_split(
        orders,
        kind=kind,
        train_cutoff=test_cutoff - horizon,
        test_cutoff=test_cutoff,
        horizon_days=horizon,
        random_state=int(run.params.get("random_state", 0)),
    )
    X = scores_ml.order_features(orders, as_of=now_day)
    keep = scores_ml.population(orders, as_of=now_day, kind=kind)
    values = scores_ml.predict_scores(result.model, X[keep], kind=kind)
    scored_ids = [cid for cid, k in zip(ids, keep, strict=True) if k]
    stored = StoredModel(
        pipeline=result.model,
        clusterer=None,
        feature_names=scores_ml.FEATURE_NAMES,
        metadata={"run": str(run.pk), "kind": run.kind},
    )
    reference = _reference(values, X[keep])
    window = {
        "as_of": as_of.isoformat(),
        "train_cutoff": _iso(result.window["train_cutoff"]),
        "test_cutoff": _iso(result.window["test_cutoff"]),
        "horizon_days": horizon,
        "train_customers": result.n_train,
        "test_customers": result.n_test,
    }
    now = timezone.now()
    with transaction.atomic():
        _write_scores(run, scored_ids, values, now)
        removed, _ = CustomerScore.objects.filter(kind=run.kind).exclude(model_run=run).delete()
        ModelRun.objects.filter(pk=run.pk).update(
            status=RunStatus.SUCCEEDED,
            metrics=result.metrics,
            baseline=result.baseline,
            importances=result.importances,
            window=window,
            reference=reference,
            population=len(ids),
            scored=len(scored_ids),
            removed=removed,
            model=model_dumps(stored, key=model_signing_key()),
            format_version=FORMAT_VERSION,
            sklearn_version=sklearn.__version__,
            finished_at=now,
        )
        run.refresh_from_db()
        drift_reports_create(run=run)


def _iso(day: float) -> str:
    return dt.datetime.fromtimestamp(day * 86_400.0, tz=dt.UTC).isoformat()


def _reference(values: np.ndarray, X: np.ndarray) -> dict[str, list[float]]:
    """A seeded sample of scores and features, without ids: enough for PSI later."""
    from segmentation.ml import scores as scores_ml
    from segmentation.ml._sample import sample_indices

    rows = sample_indices(len(values), REFERENCE_SAMPLE, 0)
    out = {"score": [round(float(v), 6) for v in values[rows]]}
    for j, name in enumerate(scores_ml.FEATURE_NAMES):
        out[name] = [round(float(v), 4) for v in X[rows, j]]
    return out


def _write_scores(
    run: ModelRun, ids: list[uuid.UUID], values: np.ndarray, now: dt.datetime
) -> None:
    for start in range(0, len(ids), WRITE_BATCH):
        CustomerScore.objects.bulk_create(
            [
                CustomerScore(
                    customer_id=cid, kind=run.kind, score=float(v), model_run=run, scored_at=now
                )
                for cid, v in zip(
                    ids[start : start + WRITE_BATCH],
                    values[start : start + WRITE_BATCH],
                    strict=True,
                )
            ],
            update_conflicts=True,
            unique_fields=["customer", "kind"],
            update_fields=["score", "model_run", "scored_at"],
        )


def drift_reports_create(*, run: ModelRun) -> list[DriftReport]:
    """PSI of the score and each feature against the previous successful run of the kind; an
    alert (and an audit entry) for every variable past the threshold. Idempotent per run."""
    import numpy as np

    from segmentation.ml import drift as drift_ml

    previous = selectors.model_run_previous(run=run)
    if previous is None or not previous.reference or not run.reference:
        return []
    DriftReport.objects.filter(run=run).delete()
    reports = []
    for variable, current in run.reference.items():
        reference = previous.reference.get(variable)
        if not reference or not current:
            continue
        result = drift_ml.psi(np.array(reference), np.array(current))
        report = DriftReport.objects.create(
            run=run,
            previous_run=previous,
            kind=run.kind,
            variable=variable,
            psi=result.psi,
            level=result.level,
            detail=result.as_dict(),
        )
        reports.append(report)
        if result.psi > drift_ml.ALERT_THRESHOLD:
            DriftAlert.objects.create(
                report=report,
                threshold=drift_ml.ALERT_THRESHOLD,
                message=(
                    f"{run.get_kind_display()}: {variable} drifted, PSI {result.psi:.2f} > "
                    f"{drift_ml.ALERT_THRESHOLD}"
                )[:300],
            )
            audit_record(
                actor="system",
                action="personalization.drift.alert",
                object_type="personalization.driftreport",
                object_id=str(report.pk),
                details={"kind": run.kind, "variable": variable, "psi": round(result.psi, 4)},
            )
    return reports


def drift_alert_acknowledge(*, alert: DriftAlert, actor: str) -> DriftAlert:
    with transaction.atomic():
        alert.acknowledged_by = actor[:150]
        alert.acknowledged_at = timezone.now()
        alert.save(update_fields=["acknowledged_by", "acknowledged_at"])
        audit_record(
            actor=actor,
            action="personalization.drift.acknowledge",
            object_type="personalization.driftalert",
            object_id=str(alert.pk),
        )
    return alert


# -- recommendations -------------------------------------------------------------------------


def _recommendations_run(run: ModelRun) -> None:
    import sklearn

    from segmentation.ml.recommend import build_interactions, evaluate, fit_recommender
    from segmentation.ml.storage import FORMAT_VERSION, StoredModel, model_dumps

    as_of = _as_of(run)
    strategy = Strategy(run.params.get("strategy", Strategy.ITEM_KNN))
    holdout_days = int(run.params.get("holdout_days", HOLDOUT_DAYS))
    split = as_of - dt.timedelta(days=holdout_days)
    train = selectors.interaction_rows(run.purpose, before=split)
    test = selectors.interaction_rows(run.purpose, since=split, before=as_of)
    metrics: dict[str, Any] = {"k": RECOMMEND_K, "holdout_days": holdout_days}
    if train:
        inter = build_interactions(
            [c for c, _, _ in train], [p for _, p, _ in train], [w for _, _, w in train]
        )
        holdout: dict[Any, set[str]] = {}
        for c, p, _ in test:
            if c in inter.user_index and p in inter.item_index:
                holdout.setdefault(c, set()).add(p)
        for name, strat in (("model", strategy), ("popularity", Strategy.POPULARITY)):
            rec = fit_recommender(inter, strategy=strat)
            metrics[name] = evaluate(
                lambda u, k, rec=rec: [i for i, _, _ in rec.recommend(u, k=k)],
                holdout,
                k=RECOMMEND_K,
            )
    everything = selectors.interaction_rows(run.purpose, before=as_of)
    if not everything:
        raise ApplicationError(
            "recommendations_no_interactions",
            "no purchases, cart additions or views of allowed customers to learn from",
        )
    inter = build_interactions(
        [c for c, _, _ in everything], [p for _, p, _ in everything], [w for _, _, w in everything]
    )
    rec = fit_recommender(inter, strategy=strategy)
    fallback = rec.recommend(None, k=RECOMMEND_K)
    metrics["fallback"] = [{"item": i, "score": s, "source": src} for i, s, src in fallback]
    now = timezone.now()
    stored = StoredModel(
        pipeline=rec,
        clusterer=None,
        feature_names=(),
        metadata={"run": str(run.pk), "kind": run.kind, "strategy": str(strategy)},
    )
    with transaction.atomic():
        written = _write_recommendations(run, rec, now)
        removed, _ = Recommendation.objects.exclude(model_run=run).delete()
        ModelRun.objects.filter(pk=run.pk).update(
            status=RunStatus.SUCCEEDED,
            metrics=metrics,
            window={"as_of": as_of.isoformat(), "holdout_from": split.isoformat()},
            population=len(inter.user_ids),
            scored=written,
            removed=removed,
            model=model_dumps(stored, key=model_signing_key()),
            format_version=FORMAT_VERSION,
            sklearn_version=sklearn.__version__,
            finished_at=now,
        )


def _write_recommendations(run: ModelRun, rec: Recommender, now: dt.datetime) -> int:
    users = rec.interactions.user_ids
    written = 0
    for start in range(0, len(users), WRITE_BATCH):
        batch = []
        for user in users[start : start + WRITE_BATCH]:
            items = [
                {"item": i, "score": round(s, 6), "source": src}
                for i, s, src in rec.recommend(user, k=RECOMMEND_K)
            ]
            batch.append(
                Recommendation(customer_id=user, model_run=run, items=items, computed_at=now)
            )
        Recommendation.objects.bulk_create(
            batch,
            update_conflicts=True,
            unique_fields=["customer"],
            update_fields=["model_run", "items", "computed_at"],
        )
        written += len(batch)
    return written


def recommender_load(run: ModelRun) -> Recommender:
    """The signed model of a recommendations run (signature checked before unpickling)."""
    from segmentation.ml.storage import model_loads

    return model_loads(bytes(run.model), key=model_signing_key()).pipeline


def _customer_not_found() -> ApplicationError:
    return ApplicationError("customer_not_found", "no such customer", status=404)


def _personalization_not_allowed() -> ApplicationError:
    return ApplicationError(
        NOT_ALLOWED,
        "this customer's consent does not allow personalization (not granted, withdrawn, "
        "objected to or restricted), so no recommendation or decision is made",
        status=403,
    )


def _running_experiment(target: str) -> tuple[Experiment, list[Variant]] | None:
    """The oldest running experiment on `target` with its variants, in one query."""
    variants = list(
        Variant.objects.filter(
            experiment__target=target, experiment__status=ExperimentStatus.RUNNING
        )
        .select_related("experiment")
        .order_by("experiment__started_at", "experiment_id", "position", "id")
    )
    if not variants:
        return None
    first = variants[0].experiment
    return first, [v for v in variants if v.experiment_id == first.pk]


def experiment_expose(
    *, experiment: Experiment, customer_id: uuid.UUID, variants: list[Variant] | None = None
) -> tuple[str, dict]:
    """The customer's variant (hash of experiment key and customer id) and its config; the
    first exposure is recorded (idempotent: later exposures keep the first time)."""
    variants = variants if variants is not None else list(experiment.variants.all())
    name = assign(
        experiment.key,
        str(customer_id),
        [(v.name, v.weight) for v in variants],
        holdout=experiment.holdout,
    )
    Assignment.objects.get_or_create(
        experiment=experiment,
        customer_id=customer_id,
        defaults={"variant": name, "exposed_at": timezone.now()},
    )
    config = next((v.config for v in variants if v.name == name), {})
    return name, dict(config or {})


def recommendations_serve(*, customer_id: uuid.UUID, k: int = RECOMMEND_K) -> dict[str, Any]:
    """Top-k items for a partner system: the precomputed list, or the popularity fallback for a
    customer the model has not seen; 404 for an unknown customer, 403 without the
    personalization purpose. A running recommendations experiment may switch the strategy
    ({"strategy": "popularity"}), and its holdout gets the non-personalised list. The hot path is
    one statement (consent now, the list, whether an experiment runs, the fallback for a cold
    start); only a running experiment adds its own queries (variants and the exposure)."""
    k = max(1, min(int(k), RECOMMEND_K))
    state = selectors.recommendation_serving_state(customer_id)
    if state is None:
        raise _customer_not_found()
    if not state.allowed:
        raise _personalization_not_allowed()
    row, run_id = state.items, state.run_id
    if row is None:
        row, run_id = state.fallback_items or [], state.fallback_run_id
    running = None
    variant = None
    if state.experiment_running:
        running = _running_experiment(ExperimentTarget.RECOMMENDATIONS)
    if running is not None:
        experiment, variants = running
        variant, config = experiment_expose(
            experiment=experiment, customer_id=customer_id, variants=variants
        )
        if state.items is not None and (
            variant == HOLDOUT or config.get("strategy") == Strategy.POPULARITY
        ):
            run = selectors.model_run_latest(ModelKind.RECOMMENDATIONS)
            row = (run.metrics.get("fallback") or []) if run else []
            run_id = run.pk if run else None
    return {
        "customer_id": str(customer_id),
        "items": row[:k],
        "experiment": {"key": running[0].key, "variant": variant} if running else None,
        "model_run": str(run_id) if run_id else None,
    }


# -- decisions -------------------------------------------------------------------------------

_OPS = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}
_OP_TEXT = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def rule_matches(
    rule: PersonalizationRule, *, scores: dict[str, float], segments: set[uuid.UUID]
) -> tuple[bool, list[str]]:
    """Whether the rule matches, and the reasons in words (or why not)."""
    why: list[str] = []
    if rule.segment_id is not None:
        if rule.segment_id not in segments:
            return False, [f"not in segment '{rule.segment}'"]
        why.append(f"in segment '{rule.segment}'")
    if rule.score_kind:
        score = scores.get(rule.score_kind)
        if score is None:
            return False, [f"no {rule.score_kind} score"]
        if not _OPS[rule.score_op](score, rule.score_threshold):
            return False, [f"{rule.score_kind} score {score:.3f} not {rule.score_op}"]
        op = _OP_TEXT[rule.score_op]
        why.append(f"{rule.score_kind} score {score:.3f} {op} {rule.score_threshold:g}")
    if not why:
        why.append("rule has no condition (matches everyone)")
    return True, why


def decision_make(*, customer_id: uuid.UUID) -> dict[str, Any]:
    """The first active rule (by priority, then id) the customer matches, its offer key and why;
    404 for an unknown customer, 403 without the personalization purpose. A running decision
    experiment can override the offer ({"offer_key": ...}) and its holdout gets no offer. One
    statement reads consent, scores, segments, rules and whether an experiment runs; only a
    running experiment adds its own queries."""
    state = selectors.decision_state(customer_id)
    if state is None:
        raise _customer_not_found()
    if not state.allowed:
        raise _personalization_not_allowed()
    matched = None
    why: list[str] = []
    for rule in state.rules:
        ok, reasons = rule_matches(rule, scores=state.scores, segments=state.segments)
        if ok:
            matched, why = rule, reasons
            break
    offer = matched.offer_key if matched else None
    if matched is None:
        why = ["no active rule matched"]
    running = _running_experiment(ExperimentTarget.DECISION) if state.experiment_running else None
    experiment = running[0] if running else None
    variant = None
    if running is not None:
        variant, config = experiment_expose(
            experiment=running[0], customer_id=customer_id, variants=running[1]
        )
        if variant == HOLDOUT:
            offer = None
            why = [*why, f"experiment '{experiment.key}': holdout group gets no offer"]
        elif config.get("offer_key"):
            offer = str(config["offer_key"])
            why = [*why, f"experiment '{experiment.key}' variant '{variant}' offers {offer}"]
    return {
        "customer_id": str(customer_id),
        "matched_rule": (
            {"id": matched.pk, "name": matched.name, "priority": matched.priority}
            if matched
            else None
        ),
        "offer_key": offer,
        "why": why,
        "experiment": {"key": experiment.key, "variant": variant} if experiment else None,
    }


# -- experiments -----------------------------------------------------------------------------


def experiment_start(*, experiment: Experiment, actor: str) -> Experiment:
    """Start an experiment (needs a variant); audited."""
    if not experiment.variants.exists():
        raise ApplicationError("experiment_no_variants", "add at least one variant first")
    with transaction.atomic():
        experiment.status = ExperimentStatus.RUNNING
        experiment.started_at = experiment.started_at or timezone.now()
        experiment.save(update_fields=["status", "started_at"])
        audit_record(
            actor=actor,
            action="personalization.experiment.start",
            object_type="personalization.experiment",
            object_id=str(experiment.pk),
        )
    return experiment


def experiment_stop(*, experiment: Experiment, actor: str) -> Experiment:
    with transaction.atomic():
        experiment.status = ExperimentStatus.STOPPED
        experiment.stopped_at = timezone.now()
        experiment.save(update_fields=["status", "stopped_at"])
        audit_record(
            actor=actor,
            action="personalization.experiment.stop",
            object_type="personalization.experiment",
            object_id=str(experiment.pk),
        )
    return experiment


# -- consent ---------------------------------------------------------------------------------


def personalization_data_purge(customer_id: uuid.UUID, purpose_code: str) -> int:
    """Withdrawal hook: delete the customer's scores if profiling no longer covers them, and
    their recommendations and experiment assignments if personalization no longer does.
    Idempotent; checks the current state rather than trusting `purpose_code`, so restrictions
    and objections are handled alike. Other purposes are not ours. Returns rows deleted."""
    if purpose_code not in ("profiling", "personalization"):
        return 0
    deleted = 0
    if not selectors.customer_allowed(customer_id, "profiling"):
        deleted += CustomerScore.objects.filter(customer_id=customer_id).delete()[0]
    if not selectors.customer_allowed(customer_id, "personalization"):
        deleted += Recommendation.objects.filter(customer_id=customer_id).delete()[0]
        deleted += Assignment.objects.filter(customer_id=customer_id).delete()[0]
    return deleted


def scheduled_training(*, actor: str = "beat") -> list[uuid.UUID]:
    """Beat: one run of every kind (each executed by the worker)."""
    return [
        model_run_create(kind=kind, actor=actor).pk for kind in (*SCORE_KINDS, "recommendations")
    ]
