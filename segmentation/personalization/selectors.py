"""Reads of personalization: training data, a customer's scores, rule conflicts, results.

Every population read goes through `consent.selectors.customers_allowed_for`, composed as a
subquery, so training and scoring never see a customer whose consent does not cover the model's
purpose.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from django.db import router
from django.db.models import Count, F, Min, Q, Sum, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce

from cdp.api.prepared import prepared_fetchone
from cdp.ingest.models import Event
from consent.selectors import customers_allowed_for
from segmentation.ml.experiments import HOLDOUT, SrmResult, sample_ratio_mismatch, uplift
from segmentation.ml.names import EVENT_WEIGHTS
from segmentation.personalization.models import (
    Assignment,
    CustomerScore,
    Experiment,
    ExperimentStatus,
    ExperimentTarget,
    ModelInventory,
    ModelKind,
    ModelRun,
    PersonalizationRule,
    Recommendation,
    RunStatus,
    Variant,
)

ORDER_EVENT = "Order Completed"


def allowed_customer_ids(purpose: str) -> list[uuid.UUID]:
    """Ids of every customer the purpose allows now (one query)."""
    return list(customers_allowed_for(purpose).values_list("id", flat=True))


def customer_allowed(customer_id: uuid.UUID, purpose: str) -> bool:
    from cdp.profiles.models import Customer

    return customers_allowed_for(purpose, Customer.objects.filter(pk=customer_id)).exists()


# -- serving ---------------------------------------------------------------------------------
# The partner endpoints answer in one statement per request. Building that statement through the
# ORM cost about 6 ms of CPU per request (more than the database work), so it is compiled once
# per process: `customers_allowed_for` stays the one definition of "allowed" (its SQL is taken
# from it with sentinel values for the customer and the time, which are bound per request), and
# everything the SQL reads (consent state, purpose, status, experiments) is read at request time.
# It runs as a prepared statement (`cdp.api.prepared`), so PostgreSQL does not plan it each time.

_SENTINEL_ID = uuid.UUID("5e471ae1-5e47-4a1e-8000-5e471ae15e47")
_SENTINEL_NOW = dt.datetime(1999, 12, 31, 23, 59, 58, 765432, tzinfo=dt.UTC)


@dataclass(frozen=True)
class ConsentGate:
    """`customers_allowed_for(purpose)` of one customer as SQL with its parameters; `bind()`
    puts the customer and the time of the request where the sentinels were."""

    sql: str
    params: tuple[Any, ...]
    customer_at: tuple[int, ...]
    now_at: tuple[int, ...]

    def bind(self, customer_id: uuid.UUID, now: dt.datetime) -> list[Any]:
        params = list(self.params)
        for i in self.customer_at:
            params[i] = customer_id
        for i in self.now_at:
            params[i] = now
        return params


@functools.cache
def consent_gate(purpose: str, using: str) -> ConsentGate:
    """Compile `customers_allowed_for(purpose)` for one customer once per process. Raises if the
    sentinels cannot be found in the parameters (the selector changed shape): serving must then
    be fixed, never silently check against a constant time."""
    from cdp.profiles.models import Customer

    one = Customer.objects.filter(pk=_SENTINEL_ID)
    query = customers_allowed_for(purpose, one, now=_SENTINEL_NOW).values("id").query
    sql, params = query.get_compiler(using=using).as_sql()
    customer_at = tuple(i for i, p in enumerate(params) if p in (_SENTINEL_ID, _SENTINEL_ID.hex))
    now_at = tuple(i for i, p in enumerate(params) if p == _SENTINEL_NOW)
    if len(customer_at) != 1 or len(now_at) < 1:
        raise RuntimeError(
            "customers_allowed_for no longer compiles to one customer and time parameter; "
            "update segmentation.personalization.selectors.consent_gate"
        )
    return ConsentGate(sql, tuple(params), customer_at, now_at)


@dataclass(frozen=True)
class ServingState:
    """What the recommendations endpoint needs about one existing customer."""

    allowed: bool
    items: list[dict[str, Any]] | None
    run_id: uuid.UUID | None
    experiment_running: bool
    fallback_items: list[dict[str, Any]] | None
    fallback_run_id: uuid.UUID | None


@functools.cache
def _recommendation_sql(using: str) -> tuple[str, tuple[Any, ...], ConsentGate]:
    from cdp.profiles.models import Customer

    gate = consent_gate("personalization", using)
    customer = Customer._meta.db_table
    recommendation = Recommendation._meta.db_table
    variant = Variant._meta.db_table
    experiment = Experiment._meta.db_table
    run = ModelRun._meta.db_table
    # The fallback (latest successful run, as `model_run_latest` orders them) is read only for
    # a customer without a list: PostgreSQL evaluates the CASE's subquery only then. Table names
    # and the compiled consent SQL are constants; every value is a parameter.
    sql = f"""
        SELECT EXISTS({gate.sql}),
               r.items::text,
               r.model_run_id,
               EXISTS(SELECT 1 FROM "{variant}" v JOIN "{experiment}" e ON e.id = v.experiment_id
                      WHERE e.target = %s AND e.status = %s),
               CASE WHEN r.customer_id IS NULL THEN (
                   SELECT jsonb_build_array(m.id, COALESCE(m.metrics -> 'fallback', '[]'))::text
                   FROM "{run}" m WHERE m.kind = %s AND m.status = %s
                   ORDER BY m.finished_at DESC LIMIT 1
               ) END
        FROM "{customer}" c LEFT JOIN "{recommendation}" r ON r.customer_id = c.id
        WHERE c.id = %s
    """  # noqa: S608
    params = (
        str(ExperimentTarget.RECOMMENDATIONS),
        str(ExperimentStatus.RUNNING),
        str(ModelKind.RECOMMENDATIONS),
        str(RunStatus.SUCCEEDED),
    )
    return sql, params, gate


def recommendation_serving_state(
    customer_id: uuid.UUID, *, now: dt.datetime | None = None
) -> ServingState | None:
    """One statement: whether personalization allows the customer now, their stored list and
    run, whether a recommendations experiment is running, and the popularity fallback when they
    have no list. None for an unknown customer."""
    from django.utils import timezone

    using = router.db_for_read(Recommendation)
    sql, params, gate = _recommendation_sql(using)
    bound = [*gate.bind(customer_id, now or timezone.now()), *params, customer_id]
    row = prepared_fetchone(using, "recommendations", sql, bound)
    if row is None:
        return None
    allowed, items, run_id, experiment_running, fallback = row
    fallback_items = fallback_run_id = None
    if fallback is not None:
        fallback_run, fallback_items = orjson.loads(fallback)
        fallback_run_id = uuid.UUID(fallback_run)
    return ServingState(
        allowed=bool(allowed),
        items=orjson.loads(items) if items is not None else None,
        run_id=run_id,
        experiment_running=bool(experiment_running),
        fallback_items=fallback_items,
        fallback_run_id=fallback_run_id,
    )


@dataclass(frozen=True)
class DecisionState:
    """What the decision endpoint needs about one existing customer, and the active rules."""

    allowed: bool
    scores: dict[str, float]
    segments: set[uuid.UUID]
    rules: list[PersonalizationRule]
    experiment_running: bool


_RULE_FIELDS = (
    "id",
    "name",
    "priority",
    "segment_id",
    "score_kind",
    "score_op",
    "score_threshold",
    "offer_key",
    "is_active",
)


@functools.cache
def _decision_sql(using: str) -> tuple[str, tuple[Any, ...], ConsentGate]:
    from cdp.profiles.models import Customer
    from segmentation.segments.models import Segment, SegmentMembership

    gate = consent_gate("personalization", using)
    columns = {f.attname: f.column for f in PersonalizationRule._meta.concrete_fields}
    rule_columns = ", ".join(f'r."{columns[name]}"' for name in _RULE_FIELDS)
    sql = f"""
        SELECT EXISTS({gate.sql}),
               ARRAY(SELECT s.kind FROM "{CustomerScore._meta.db_table}" s
                     WHERE s.customer_id = c.id ORDER BY s.kind),
               ARRAY(SELECT s.score FROM "{CustomerScore._meta.db_table}" s
                     WHERE s.customer_id = c.id ORDER BY s.kind),
               ARRAY(SELECT m.segment_id FROM "{SegmentMembership._meta.db_table}" m
                     WHERE m.customer_id = c.id AND m.left_at IS NULL),
               EXISTS(SELECT 1 FROM "{Variant._meta.db_table}" v
                      JOIN "{Experiment._meta.db_table}" e ON e.id = v.experiment_id
                      WHERE e.target = %s AND e.status = %s),
               (SELECT json_agg(json_build_array({rule_columns}, g.name)
                                ORDER BY r.priority, r.id)
                FROM "{PersonalizationRule._meta.db_table}" r
                LEFT JOIN "{Segment._meta.db_table}" g ON g.id = r.segment_id
                WHERE r.is_active)::text
        FROM "{Customer._meta.db_table}" c
        WHERE c.id = %s
    """  # noqa: S608
    params = (str(ExperimentTarget.DECISION), str(ExperimentStatus.RUNNING))
    return sql, params, gate


def decision_state(
    customer_id: uuid.UUID, *, now: dt.datetime | None = None
) -> DecisionState | None:
    """One statement: consent now, the customer's scores and open segment memberships, the
    active rules by priority (with their segment's name, for the reasons) and whether a decision
    experiment is running. None for an unknown customer."""
    from django.utils import timezone

    from segmentation.segments.models import Segment

    using = router.db_for_read(PersonalizationRule)
    sql, params, gate = _decision_sql(using)
    bound = [*gate.bind(customer_id, now or timezone.now()), *params, customer_id]
    row = prepared_fetchone(using, "decision", sql, bound)
    if row is None:
        return None
    allowed, kinds, scores, segments, experiment_running, rules_json = row
    rules = []
    for values in orjson.loads(rules_json) if rules_json else []:
        *fields, segment_name = values
        if fields[3] is not None:
            fields[3] = uuid.UUID(fields[3])
        rule = PersonalizationRule.from_db(using, _RULE_FIELDS, fields)
        if rule.segment_id is not None:
            rule.segment = Segment.from_db(using, ("id", "name"), (rule.segment_id, segment_name))
        rules.append(rule)
    return DecisionState(
        allowed=bool(allowed),
        scores=dict(zip(kinds, scores, strict=True)),
        segments=set(segments),
        rules=rules,
        experiment_running=bool(experiment_running),
    )


def order_rows(purpose: str) -> list[tuple[uuid.UUID, dt.datetime, float]]:
    """(customer, order time, order value) per order of allowed customers: distinct
    (customer, properties.order_id) among "Order Completed" events (the event id when the order
    id is missing), time = its first line, value = sum of its line amounts."""
    allowed = customers_allowed_for(purpose).values("id")
    order_key = Coalesce(KeyTextTransform("order_id", "properties"), Cast("id", TextField()))
    rows = (
        Event.objects.filter(name=ORDER_EVENT, customer_id__in=allowed)
        .annotate(order_key=order_key)
        .values("customer_id", "order_key")
        .annotate(when=Min("timestamp"), value=Sum("amount"))
        .values_list("customer_id", "when", "value")
    )
    return [(c, w, float(v or 0)) for c, w, v in rows.iterator(chunk_size=20_000)]


def interaction_rows(
    purpose: str, *, before: dt.datetime | None = None, since: dt.datetime | None = None
) -> list[tuple[uuid.UUID, str, float]]:
    """(customer, product id, summed weight) of allowed customers' purchases, cart adds and
    views in [since, before)."""
    allowed = customers_allowed_for(purpose).values("id")
    qs = Event.objects.filter(
        name__in=list(EVENT_WEIGHTS), customer_id__in=allowed, amount__gte=0
    ).exclude(product_id="")
    qs = qs.exclude(properties__contains={"non_product": True})  # a missing key is kept
    if before is not None:
        qs = qs.filter(timestamp__lt=before)
    if since is not None:
        qs = qs.filter(timestamp__gte=since)
    counts = qs.values("customer_id", "product_id", "name").annotate(n=Count("id"))
    out: dict[tuple[uuid.UUID, str], float] = {}
    for row in counts.iterator(chunk_size=20_000):
        key = (row["customer_id"], row["product_id"])
        out[key] = out.get(key, 0.0) + EVENT_WEIGHTS[row["name"]] * row["n"]
    return [(c, p, w) for (c, p), w in out.items()]


def model_run_previous(*, run: ModelRun) -> ModelRun | None:
    """The last successful run of the same kind before `run`."""
    return (
        ModelRun.objects.filter(
            kind=run.kind, status=RunStatus.SUCCEEDED, created_at__lt=run.created_at
        )
        .exclude(pk=run.pk)
        .order_by("-created_at")
        .first()
    )


def model_run_latest(kind: str) -> ModelRun | None:
    return (
        ModelRun.objects.filter(kind=kind, status=RunStatus.SUCCEEDED)
        .order_by("-finished_at")
        .first()
    )


def customer_scores(customer_id: uuid.UUID) -> dict[str, float]:
    return dict(CustomerScore.objects.filter(customer_id=customer_id).values_list("kind", "score"))


def customer_segment_ids(customer_id: uuid.UUID) -> set[uuid.UUID]:
    """The segments the customer is in now (open membership stays)."""
    from segmentation.segments.models import SegmentMembership

    return set(
        SegmentMembership.objects.filter(customer_id=customer_id, left_at__isnull=True).values_list(
            "segment_id", flat=True
        )
    )


def customer_score_explanations(customer_id: uuid.UUID) -> list[dict[str, Any]]:
    """For the access report (Art. 15(1)(h)/22): each score with what its model is for and uses."""
    inventory = {m.kind: m for m in ModelInventory.objects.all()}
    out = []
    for score in CustomerScore.objects.filter(customer_id=customer_id).order_by("kind"):
        entry = inventory.get(score.kind)
        out.append(
            {
                "kind": score.kind,
                "score": score.score,
                "scored_at": score.scored_at.isoformat(),
                "model": entry.name if entry else score.kind,
                "purpose": entry.purpose if entry else "",
                "inputs": entry.inputs if entry else [],
                "logic": entry.logic if entry else "",
            }
        )
    return out


# -- rules -----------------------------------------------------------------------------------


def _interval(rule: PersonalizationRule) -> tuple[float, float, bool, bool]:
    """The score range a rule accepts as (low, high, low_open, high_open)."""
    t = float(rule.score_threshold) if rule.score_threshold is not None else 0.0
    if rule.score_op == "gt":
        return t, math.inf, True, True
    if rule.score_op == "gte":
        return t, math.inf, False, True
    if rule.score_op == "lt":
        return -math.inf, t, True, True
    return -math.inf, t, True, False  # lte


def rules_can_overlap(a: PersonalizationRule, b: PersonalizationRule) -> bool:
    """False only when the two rules provably cannot match the same customer: the same score
    kind with disjoint ranges. Different segments can overlap (a customer can be in both)."""
    if a.score_kind and a.score_kind == b.score_kind:
        lo_a, hi_a, lo_open_a, hi_open_a = _interval(a)
        lo_b, hi_b, lo_open_b, hi_open_b = _interval(b)
        low = max(lo_a, lo_b)
        high = min(hi_a, hi_b)
        if low > high:
            return False
        if low == high:
            open_low = lo_open_a if lo_a == low else lo_open_b
            open_high = hi_open_a if hi_a == high else hi_open_b
            if open_low or open_high:
                return False
    return True


@dataclass(frozen=True)
class RuleConflict:
    priority: int
    first: PersonalizationRule
    second: PersonalizationRule

    @property
    def message(self) -> str:
        return (
            f"'{self.first.name}' and '{self.second.name}' share priority {self.priority} "
            "and can match the same customer"
        )


def rule_conflicts(rules: Iterable[PersonalizationRule] | None = None) -> list[RuleConflict]:
    """Pairs of active rules at the same priority that can match the same customer: which one
    wins would depend on creation order, so the admin flags them."""
    rules = list(rules if rules is not None else PersonalizationRule.objects.filter(is_active=True))
    rules = [r for r in rules if r.is_active]
    conflicts = []
    for i, a in enumerate(rules):
        for b in rules[i + 1 :]:
            if a.priority == b.priority and rules_can_overlap(a, b):
                conflicts.append(RuleConflict(a.priority, a, b))
    return conflicts


# -- experiments -----------------------------------------------------------------------------


@dataclass
class ExperimentResults:
    rows: list[dict[str, Any]]
    srm: SrmResult
    control: str | None


def experiment_results(experiment: Experiment) -> ExperimentResults:
    """Per variant (and holdout): exposed customers, converted customers (a conversion event
    after their first exposure), rate, and uplift with a 95% CI against the control (the first
    variant); plus the sample-ratio-mismatch check of the exposure counts."""
    variants = list(experiment.variants.all())
    weights = {v.name: v.weight for v in variants}
    total = sum(weights.values()) or 1.0
    planned = {name: (1 - experiment.holdout) * w / total for name, w in weights.items()}
    if experiment.holdout > 0:
        planned[HOLDOUT] = experiment.holdout
    converted = Q(
        customer__events__name=experiment.conversion_event,
        customer__events__timestamp__gte=F("exposed_at"),
    )
    counts = (
        Assignment.objects.filter(experiment=experiment)
        .values("variant")
        .annotate(
            exposed=Count("customer_id", distinct=True),
            converted=Count("customer_id", filter=converted, distinct=True),
        )
    )
    by_name = {row["variant"]: row for row in counts}
    control = variants[0].name if variants else None
    base = by_name.get(control or "", {"exposed": 0, "converted": 0})
    rows = []
    for name in [*weights, *([HOLDOUT] if experiment.holdout > 0 else [])]:
        row = by_name.get(name, {"exposed": 0, "converted": 0})
        exposed, conv = row["exposed"], row["converted"]
        result: dict[str, Any] = {
            "variant": name,
            "exposed": exposed,
            "converted": conv,
            "rate": (conv / exposed) if exposed else None,
            "planned_share": planned.get(name, 0.0),
            "uplift": None,
        }
        if name != control and exposed and base["exposed"]:
            result["uplift"] = uplift(
                control_conversions=base["converted"],
                control_exposed=base["exposed"],
                treatment_conversions=conv,
                treatment_exposed=exposed,
            ).as_dict()
        rows.append(result)
    srm = sample_ratio_mismatch({r["variant"]: r["exposed"] for r in rows}, planned)
    return ExperimentResults(rows=rows, srm=srm, control=control)
