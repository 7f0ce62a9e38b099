"""Full refresh writes only the difference, keeps history, and rolls back exactly; consent gates
membership and a withdrawal purges it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from cdp.api.errors import ApplicationError
from consent.hooks import withdrawal_hooks_run
from segmentation.segments.models import RefreshStatus, SegmentMembership
from segmentation.segments.selectors import segment_members_on
from segmentation.segments.services import (
    segment_refresh,
    segment_refresh_rollback,
    segments_refresh_due,
)
from tests.segmentation.segments.conftest import customer, grant, segment

pytestmark = pytest.mark.django_db

GOLD = {"field": "trait.plan", "op": "eq", "value": "gold"}


def open_ids(seg) -> set:
    return set(
        SegmentMembership.objects.filter(segment=seg, left_at__isnull=True).values_list(
            "customer_id", flat=True
        )
    )


def set_plan(c, plan: str) -> None:
    type(c).objects.filter(pk=c.pk).update(attributes={"plan": plan})


def test_refresh_writes_only_the_difference_and_keeps_stays():
    a, b, c = (customer(attributes={"plan": "gold"}) for _ in range(3))
    grant([a, b, c])
    seg = segment(GOLD)

    first = segment_refresh(segment_id=seg.pk)
    assert (first.added, first.removed, first.size) == (3, 0, 3)
    stay_ids = set(SegmentMembership.objects.filter(segment=seg).values_list("id", flat=True))

    again = segment_refresh(segment_id=seg.pk)
    assert (again.added, again.removed, again.size) == (0, 0, 3)
    assert set(SegmentMembership.objects.filter(segment=seg).values_list("id", flat=True)) == (
        stay_ids
    )

    set_plan(c, "silver")
    d = customer(attributes={"plan": "gold"})
    grant([d])
    third = segment_refresh(segment_id=seg.pk)
    assert (third.added, third.removed, third.size) == (1, 1, 3)
    assert open_ids(seg) == {a.pk, b.pk, d.pk}
    left = SegmentMembership.objects.get(segment=seg, customer=c)
    assert left.left_at == third.started_at and left.left_refresh_id == third.pk
    seg.refresh_from_db()
    assert (seg.size, seg.last_refresh_added, seg.last_refresh_removed) == (3, 1, 1)


def test_members_on_a_past_date_come_from_history():
    a, b = customer(attributes={"plan": "gold"}), customer(attributes={"plan": "gold"})
    grant([a, b])
    seg = segment(GOLD)
    first = segment_refresh(segment_id=seg.pk)
    set_plan(b, "none")
    second = segment_refresh(segment_id=seg.pk)

    between = first.started_at + (second.started_at - first.started_at) / 2
    before = first.started_at - dt.timedelta(seconds=1)
    assert {m.customer_id for m in segment_members_on(segment=seg, at=between)} == {a.pk, b.pk}
    assert {m.customer_id for m in segment_members_on(segment=seg, at=timezone.now())} == {a.pk}
    assert not segment_members_on(segment=seg, at=before).exists()


def test_rollback_restores_the_membership_before_the_refresh():
    a, b, c = (customer(attributes={"plan": "gold"}) for _ in range(3))
    grant([a, b, c])
    seg = segment(GOLD)
    segment_refresh(segment_id=seg.pk)
    set_plan(a, "none")
    d = customer(attributes={"plan": "gold"})
    grant([d])
    bad = segment_refresh(segment_id=seg.pk)
    assert open_ids(seg) == {b.pk, c.pk, d.pk}

    segment_refresh_rollback(refresh_id=bad.pk, actor="analyst")

    assert open_ids(seg) == {a.pk, b.pk, c.pk}
    assert not SegmentMembership.objects.filter(segment=seg, customer=d).exists()
    bad.refresh_from_db()
    seg.refresh_from_db()
    assert bad.status == RefreshStatus.ROLLED_BACK and seg.size == 3
    assert SegmentMembership.objects.filter(segment=seg, customer=a).get().left_at is None


def test_only_the_latest_refresh_can_be_rolled_back():
    a = customer(attributes={"plan": "gold"})
    grant([a])
    seg = segment(GOLD)
    older = segment_refresh(segment_id=seg.pk)
    segment_refresh(segment_id=seg.pk)
    with pytest.raises(ApplicationError) as caught:
        segment_refresh_rollback(refresh_id=older.pk, actor="analyst")
    assert caught.value.code == "segment_refresh_not_latest"


def test_customers_not_allowed_for_the_purpose_are_never_members():
    allowed = customer(attributes={"plan": "gold"})
    no_decision = customer(attributes={"plan": "gold"})  # GDPR: opt-in, so not allowed
    withdrawn = customer(attributes={"plan": "gold"})
    other_purpose = customer(attributes={"plan": "gold"})
    grant([allowed])
    grant([withdrawn], granted=False)
    grant([other_purpose], "analytics")
    seg = segment(GOLD)

    refresh = segment_refresh(segment_id=seg.pk)

    assert open_ids(seg) == {allowed.pk}
    assert refresh.size == 1
    _ = no_decision


def test_a_restricted_customer_leaves_at_the_next_refresh():
    a, b = customer(attributes={"plan": "gold"}), customer(attributes={"plan": "gold"})
    grant([a, b])
    seg = segment(GOLD)
    segment_refresh(segment_id=seg.pk)
    type(b).objects.filter(pk=b.pk).update(status="restricted")

    segment_refresh(segment_id=seg.pk)

    assert open_ids(seg) == {a.pk}


def test_withdrawal_hook_deletes_every_stay_for_that_purpose_only():
    a = customer(attributes={"plan": "gold"})
    grant([a])
    grant([a], "analytics")
    marketing = segment(GOLD)
    analytics = segment(GOLD, purpose="analytics")
    segment_refresh(segment_id=marketing.pk)
    segment_refresh(segment_id=analytics.pk)
    set_plan(a, "none")
    segment_refresh(segment_id=marketing.pk)  # a closed stay: history
    set_plan(a, "gold")
    segment_refresh(segment_id=marketing.pk)  # and an open one
    assert SegmentMembership.objects.filter(segment=marketing, customer=a).count() == 2

    grant([a], granted=False)
    withdrawal_hooks_run(a.pk, "marketing")  # what consent's task runs after the commit

    assert not SegmentMembership.objects.filter(segment=marketing, customer=a).exists()
    assert SegmentMembership.objects.filter(segment=analytics, customer=a).count() == 1
    marketing.refresh_from_db()
    assert marketing.size == 0
    withdrawal_hooks_run(a.pk, "marketing")  # idempotent


def test_a_broken_condition_records_a_failed_refresh():
    seg = segment(GOLD)
    type(seg).objects.filter(pk=seg.pk).update(condition={"field": "nope", "op": "eq", "value": 1})
    refresh = segment_refresh(segment_id=seg.pk)
    assert refresh.status == RefreshStatus.FAILED
    assert refresh.error == "field: unknown field 'nope'"


def test_due_segments_are_claimed_once_and_disabled_ones_never():
    due = segment(GOLD, refresh_interval_minutes=5)
    manual = segment(GOLD, refresh_interval_minutes=0)
    disabled = segment(GOLD, refresh_interval_minutes=5, enabled=False)
    now = timezone.now() + dt.timedelta(seconds=1)

    assert segments_refresh_due(now=now) == [due.pk]
    assert segments_refresh_due(now=now) == []
    due.refresh_from_db()
    assert due.next_refresh_at == now + dt.timedelta(minutes=5)
    _ = (manual, disabled)


def test_cluster_segment_holds_the_allowed_members_of_that_cluster():
    from segmentation.models import ClusterAssignment, ClusteringRun

    a, b, c = customer(), customer(), customer()
    grant([a, b])
    run = ClusteringRun.objects.create(algorithm="kmeans", features=["frequency"])
    ClusterAssignment.objects.bulk_create(
        [
            ClusterAssignment(run=run, customer=a, cluster=1),
            ClusterAssignment(run=run, customer=b, cluster=0),
            ClusterAssignment(run=run, customer=c, cluster=1),
        ]
    )
    seg = segment(None, cluster_run=run, cluster=1)
    segment_refresh(segment_id=seg.pk)
    assert open_ids(seg) == {a.pk}


def test_refresh_command_by_name():
    from io import StringIO

    from django.core.management import call_command

    a = customer(attributes={"plan": "gold"})
    grant([a])
    seg = segment(GOLD, name="Gold by command")
    out = StringIO()
    call_command("refresh_segments", "Gold by command", stdout=out)
    assert out.getvalue().startswith("Gold by command: +1 -0 = 1")
    assert open_ids(seg) == {a.pk}
