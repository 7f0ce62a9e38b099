"""Rule conflict detection and experiment results from tracked conversion events."""

from __future__ import annotations

import datetime as dt

import pytest

from segmentation.ml.experiments import uplift
from segmentation.personalization.models import Assignment, Experiment, PersonalizationRule
from segmentation.personalization.selectors import experiment_results, rule_conflicts
from segmentation.personalization.services import experiment_start
from tests.segmentation.personalization.conftest import AS_OF, order_lines
from tests.segmentation.segments.conftest import customer

pytestmark = pytest.mark.django_db


def rule(name, priority, **fields):
    return PersonalizationRule(name=name, priority=priority, offer_key=name.upper(), **fields)


def names(conflicts):
    return [(c.first.name, c.second.name) for c in conflicts]


def test_same_priority_rules_that_can_overlap_are_flagged():
    rules = [
        rule("a", 10, score_kind="churn", score_op="gt", score_threshold=0.7),
        rule("b", 10, score_kind="propensity", score_op="lt", score_threshold=0.2),
        rule("c", 20, score_kind="churn", score_op="gt", score_threshold=0.5),
    ]

    assert names(rule_conflicts(rules)) == [("a", "b")]


def test_disjoint_score_ranges_on_the_same_kind_do_not_conflict():
    rules = [
        rule("high", 10, score_kind="churn", score_op="gt", score_threshold=0.7),
        rule("low", 10, score_kind="churn", score_op="lte", score_threshold=0.7),
        rule("edge", 10, score_kind="churn", score_op="gte", score_threshold=0.7),
    ]

    # high (>0.7) and low (<=0.7) are disjoint; edge (>=0.7) overlaps both (at and above 0.7).
    assert names(rule_conflicts(rules)) == [("high", "edge"), ("low", "edge")]


def test_inactive_rules_never_conflict():
    rules = [rule("a", 10), rule("b", 10, is_active=False)]

    assert rule_conflicts(rules) == []


def test_conflicts_read_from_the_database_by_default():
    for r in (rule("x", 5), rule("y", 5)):
        r.save()

    assert names(rule_conflicts()) == [("x", "y")]


def test_rule_score_condition_must_be_complete():
    from django.db import IntegrityError

    with pytest.raises(IntegrityError):
        rule("half", 1, score_kind="churn").save()


def test_experiment_results_match_a_hand_computation(source, purposes):
    experiment = Experiment.objects.create(
        key="banner", name="Banner", target="decision", holdout=0.0
    )
    experiment.variants.create(name="control", position=0)
    experiment.variants.create(name="new", position=1)
    exposed_at = AS_OF - dt.timedelta(days=5)
    groups = {"control": (10, 2), "new": (8, 4)}  # (exposed, converted)
    for variant, (exposed, converted) in groups.items():
        for n in range(exposed):
            who = customer()
            Assignment.objects.create(
                experiment=experiment, customer=who, variant=variant, exposed_at=exposed_at
            )
            if n < converted:  # two orders after exposure count once
                order_lines(source, who, [(AS_OF, "A1", f"{variant}-{n}-1")] * 2)
            elif n == converted:  # an order before the exposure is not a conversion
                order_lines(source, who, [(exposed_at - dt.timedelta(days=1), "A1", "old")])

    res = experiment_results(experiment)

    rows = {r["variant"]: r for r in res.rows}
    assert (rows["control"]["exposed"], rows["control"]["converted"]) == (10, 2)
    assert (rows["new"]["exposed"], rows["new"]["converted"]) == (8, 4)
    assert rows["new"]["rate"] == 0.5 and rows["control"]["uplift"] is None
    expected = uplift(
        control_conversions=2, control_exposed=10, treatment_conversions=4, treatment_exposed=8
    ).as_dict()
    assert rows["new"]["uplift"] == expected
    assert rows["new"]["uplift"]["absolute"] == pytest.approx(0.3)
    assert not res.srm.mismatch and res.control == "control"


def test_experiment_needs_a_variant_to_start(db):
    from cdp.api.errors import ApplicationError

    experiment = Experiment.objects.create(key="empty", name="Empty", target="decision")

    with pytest.raises(ApplicationError):
        experiment_start(experiment=experiment, actor="t")

    experiment.variants.create(name="only")
    assert experiment_start(experiment=experiment, actor="t").status == "running"
