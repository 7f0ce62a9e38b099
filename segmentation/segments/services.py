"""Writes of segments: save, full refresh (diff only), rollback, real-time re-check, purge.

Every membership change of a segment happens with its Segment row locked (SELECT ... FOR UPDATE),
so a full refresh, a real-time re-check and a rollback of the same segment never interleave and
the partial unique index (one open stay per customer) always holds. Webhook deliveries are written
in the same transaction as the change they report and enqueued after commit.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql

from cdp.api.errors import ApplicationError
from cdp.audit.services import audit_record
from consent.selectors import customers_allowed_for
from segmentation.segments.conditions import ConditionError, condition_validate
from segmentation.segments.models import (
    DeliveryStatus,
    RefreshStatus,
    Segment,
    SegmentMembership,
    SegmentRefresh,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from segmentation.segments.selectors import SegmentRule, segment_members_sql, sql_render

logger = logging.getLogger(__name__)

DELIVERY_BATCH = 1000
_M = SegmentMembership._meta.db_table


def segment_rule_check(rule: SegmentRule) -> None:
    """Raise ApplicationError (ConditionError for the condition) when the rule cannot work."""
    from consent.models import Purpose
    from segmentation.models import ClusteringRun

    errors: list[str] = []
    if rule.condition is None and rule.cluster_run_id is None:
        errors.append("a segment needs a condition, a cluster, or both")
    if (rule.cluster_run_id is None) != (rule.cluster is None):
        errors.append("cluster_run and cluster go together")
    if (
        rule.cluster_run_id is not None
        and not ClusteringRun.objects.filter(pk=rule.cluster_run_id).exists()
    ):
        errors.append("unknown clustering run")
    if not Purpose.objects.filter(code=rule.purpose_code, is_active=True).exists():
        errors.append(f"unknown or inactive purpose '{rule.purpose_code}'")
    if errors:
        raise ApplicationError("segment_invalid", "; ".join(errors), fields={"segment": errors})
    if rule.condition is not None:
        condition_validate(rule.condition)


def segment_save(*, segment: Segment, actor: str) -> Segment:
    """Create or update a segment after validating its rule; audited. A changed rule is applied
    by the next refresh (scheduled now when the segment has a schedule)."""
    segment_rule_check(SegmentRule.of(segment))
    created = segment._state.adding
    with transaction.atomic():
        if segment.refresh_interval_minutes and segment.next_refresh_at is None:
            segment.next_refresh_at = timezone.now()
        if created:
            segment.created_by = segment.created_by or actor
        segment.save()
        audit_record(
            actor=actor,
            action="segment.create" if created else "segment.update",
            object_type="segments.segment",
            object_id=str(segment.pk),
            details={
                "purpose": segment.purpose_id,
                "enabled": segment.enabled,
                "cluster_run": str(segment.cluster_run_id) if segment.cluster_run_id else None,
                "cluster": segment.cluster,
                "refresh_interval_minutes": segment.refresh_interval_minutes,
            },
        )
    return segment


def _apply(
    segment: Segment,
    *,
    now: dt.datetime,
    refresh_id: int | None,
    customer_ids: Sequence[uuid.UUID] | None,
    collect_ids: bool,
) -> tuple[list[uuid.UUID] | int, list[uuid.UUID] | int, int]:
    """The diff in one statement: open stays for new members, close stays of leavers.

    Returns (entered, left, members): id lists when `collect_ids`, else counts. With
    `customer_ids`, only those customers are considered (real-time re-check).
    """
    members, params = segment_members_sql(
        SegmentRule.of(segment), now=now, customer_ids=customer_ids
    )
    scope = sql.SQL("" if customer_ids is None else "AND o.customer_id = ANY(%s)")
    if collect_ids:
        out = sql.SQL(
            "COALESCE((SELECT array_agg(customer_id) FROM ins), '{}'), "
            "COALESCE((SELECT array_agg(customer_id) FROM upd), '{}')"
        )
    else:
        out = sql.SQL("(SELECT count(*) FROM ins), (SELECT count(*) FROM upd)")
    statement = sql.SQL(
        """
        WITH members AS MATERIALIZED ({members}),
        ins AS (
            INSERT INTO {table} (segment_id, customer_id, entered_at, entered_refresh_id)
            SELECT %s, m.id, %s, %s FROM members m
            WHERE NOT EXISTS (
                SELECT 1 FROM {table} o
                WHERE o.segment_id = %s AND o.customer_id = m.id AND o.left_at IS NULL
            )
            RETURNING customer_id
        ),
        upd AS (
            UPDATE {table} o SET left_at = %s, left_refresh_id = %s
            WHERE o.segment_id = %s AND o.left_at IS NULL {scope}
              AND NOT EXISTS (SELECT 1 FROM members m WHERE m.id = o.customer_id)
            RETURNING customer_id
        )
        SELECT {out}, (SELECT count(*) FROM members)
        """
    ).format(members=members, table=sql.Identifier(_M), scope=scope, out=out)
    params = [*params, segment.pk, now, refresh_id, segment.pk, now, refresh_id, segment.pk]
    if customer_ids is not None:
        params.append(list(customer_ids))
    with connection.cursor() as cursor:
        cursor.execute(sql_render(statement), params)
        entered, left, members = cursor.fetchone()
    return entered, left, int(members)


def _has_webhooks(segment: Segment) -> bool:
    return WebhookSubscription.objects.filter(segment=segment, is_active=True).exists()


def segment_refresh(
    *, segment_id: uuid.UUID, actor: str = "", trigger: str = "schedule"
) -> SegmentRefresh | None:
    """Recompute the segment and write only the difference, in one transaction.

    Returns the refresh record (status failed, with the reason, when the rule no longer
    compiles), or None when the segment is gone or disabled. Safe to run twice: a second run
    finds no difference. Audited when a person asked for it (`actor`).
    """
    started = time.perf_counter()
    try:
        with transaction.atomic():
            segment = Segment.objects.select_for_update().filter(pk=segment_id).first()
            if segment is None or not segment.enabled:
                return None
            now = timezone.now()
            refresh = SegmentRefresh.objects.create(
                segment=segment, trigger=trigger, requested_by=actor, started_at=now
            )
            collect = _has_webhooks(segment)
            entered, left, size = _apply(
                segment, now=now, refresh_id=refresh.pk, customer_ids=None, collect_ids=collect
            )
            added = len(entered) if isinstance(entered, list) else entered
            removed = len(left) if isinstance(left, list) else left
            finished = timezone.now()
            refresh.status = RefreshStatus.SUCCEEDED
            refresh.added, refresh.removed, refresh.size = added, removed, size
            refresh.duration_ms = int((time.perf_counter() - started) * 1000)
            refresh.finished_at = finished
            refresh.save()
            _segment_after_refresh(segment, refresh, now)
            if collect:
                _notify(segment, entered=list(entered), left=list(left))
            if actor:
                audit_record(
                    actor=actor,
                    action="segment.refresh",
                    object_type="segments.segment",
                    object_id=str(segment.pk),
                    details={"refresh": refresh.pk, "added": added, "removed": removed},
                )
            return refresh
    except ConditionError as exc:
        return _refresh_failed(segment_id, actor, trigger, exc.message, started)


def _segment_after_refresh(segment: Segment, refresh: SegmentRefresh, now: dt.datetime) -> None:
    segment.last_refreshed_at = refresh.finished_at
    segment.last_refresh_added = refresh.added
    segment.last_refresh_removed = refresh.removed
    segment.last_refresh_ms = refresh.duration_ms
    segment.size = refresh.size
    if segment.refresh_interval_minutes:
        segment.next_refresh_at = now + dt.timedelta(minutes=segment.refresh_interval_minutes)
    segment.save(
        update_fields=[
            "last_refreshed_at",
            "last_refresh_added",
            "last_refresh_removed",
            "last_refresh_ms",
            "size",
            "next_refresh_at",
        ]
    )


def _refresh_failed(
    segment_id: uuid.UUID, actor: str, trigger: str, reason: str, started: float
) -> SegmentRefresh | None:
    with transaction.atomic():
        segment = Segment.objects.select_for_update().filter(pk=segment_id).first()
        if segment is None:
            return None
        now = timezone.now()
        if segment.refresh_interval_minutes:
            segment.next_refresh_at = now + dt.timedelta(minutes=segment.refresh_interval_minutes)
            segment.save(update_fields=["next_refresh_at"])
        return SegmentRefresh.objects.create(
            segment=segment,
            trigger=trigger,
            requested_by=actor,
            status=RefreshStatus.FAILED,
            error=reason[:500],
            started_at=now,
            finished_at=now,
            duration_ms=int((time.perf_counter() - started) * 1000),
        )


def segment_refresh_rollback(*, refresh_id: int, actor: str) -> SegmentRefresh:
    """Undo the segment's latest successful refresh: delete the stays it opened, reopen the stays
    it closed (for customers still allowed for the purpose and not back in since). Audited."""
    with transaction.atomic():
        refresh = SegmentRefresh.objects.filter(pk=refresh_id).first()
        if refresh is None:
            raise ApplicationError("segment_refresh_unknown", "no such refresh", status=404)
        segment = Segment.objects.select_for_update().get(pk=refresh.segment_id)
        latest = (
            SegmentRefresh.objects.filter(segment=segment, status=RefreshStatus.SUCCEEDED)
            .order_by("-started_at", "-id")
            .first()
        )
        if latest is None or latest.pk != refresh.pk:
            raise ApplicationError(
                "segment_refresh_not_latest",
                "only the segment's latest successful refresh can be rolled back",
                status=409,
            )
        now = timezone.now()
        opened = SegmentMembership.objects.filter(segment=segment, entered_refresh=refresh)
        left_ids = list(opened.filter(left_at__isnull=True).values_list("customer_id", flat=True))
        opened.delete()
        allowed = customers_allowed_for(segment.purpose_id, now=now).values("id")
        open_now = SegmentMembership.objects.filter(segment=segment, left_at__isnull=True)
        closed = SegmentMembership.objects.filter(
            segment=segment, left_refresh=refresh, customer_id__in=allowed
        ).exclude(customer_id__in=open_now.values("customer_id"))
        entered_ids = list(closed.values_list("customer_id", flat=True))
        closed.update(left_at=None, left_refresh=None)
        SegmentMembership.objects.filter(segment=segment, left_refresh=refresh).update(
            left_refresh=None
        )
        refresh.status = RefreshStatus.ROLLED_BACK
        refresh.rolled_back_at = now
        refresh.save(update_fields=["status", "rolled_back_at"])
        segment.size = open_now.count()
        segment.save(update_fields=["size"])
        _notify(segment, entered=entered_ids, left=left_ids)
        audit_record(
            actor=actor,
            action="segment.refresh_rollback",
            object_type="segments.segment",
            object_id=str(segment.pk),
            details={"refresh": refresh.pk, "reopened": len(entered_ids), "removed": len(left_ids)},
        )
    return refresh


def segment_members_recheck(customer_ids: Sequence[uuid.UUID]) -> int:
    """Real time: re-evaluate these customers against every enabled real-time segment.

    Called by `cdp.ingest.tasks.customers_touched` (through the ingest hook) after each committed
    batch. One statement per segment; returns the number of membership changes.
    """
    ids = [uuid.UUID(str(i)) for i in customer_ids]
    if not ids:
        return 0
    changes = 0
    segment_ids = list(
        Segment.objects.filter(enabled=True, realtime=True, condition__isnull=False)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for segment_id in segment_ids:
        try:
            with transaction.atomic():
                segment = Segment.objects.select_for_update().filter(pk=segment_id).first()
                if segment is None or not segment.enabled:
                    continue
                entered, left, _ = _apply(
                    segment, now=timezone.now(), refresh_id=None, customer_ids=ids, collect_ids=True
                )
                if entered or left:
                    changes += len(entered) + len(left)
                    segment.size = max(0, segment.size + len(entered) - len(left))
                    segment.save(update_fields=["size"])
                    _notify(segment, entered=list(entered), left=list(left))
        except ConditionError:
            logger.warning("segment %s has an invalid condition; skipped in real time", segment_id)
    return changes


def segment_memberships_purge(customer_id: uuid.UUID, purpose_code: str) -> int:
    """Withdrawal hook: delete every stay, open or past, of this customer in segments serving
    `purpose_code`. Deleted rather than closed: the history would itself be data derived for a
    purpose the customer withdrew. Partners subscribed to leave events are told. Idempotent."""
    with transaction.atomic():
        segment_ids = set(
            SegmentMembership.objects.filter(
                customer_id=customer_id, segment__purpose_id=purpose_code
            ).values_list("segment_id", flat=True)
        )
        segments = list(
            Segment.objects.select_for_update().filter(pk__in=segment_ids).order_by("pk")
        )
        removed = 0
        for segment in segments:
            stays = SegmentMembership.objects.filter(segment=segment, customer_id=customer_id)
            was_open = stays.filter(left_at__isnull=True).exists()
            removed += stays.delete()[0]
            if was_open:
                segment.size = max(0, segment.size - 1)
                segment.save(update_fields=["size"])
                _notify(segment, entered=[], left=[customer_id])
    return removed


def segments_refresh_due(*, now: dt.datetime | None = None) -> list[uuid.UUID]:
    """Claim the segments whose scheduled refresh is due (moving their next time on) and enqueue
    one refresh task each after commit. Concurrent beats cannot claim the same segment twice."""
    from segmentation.segments.selectors import segments_due
    from segmentation.segments.tasks import segment_refresh as refresh_task

    now = now or timezone.now()
    with transaction.atomic():
        due = list(segments_due(now=now).select_for_update(skip_locked=True))
        for segment in due:
            segment.next_refresh_at = now + dt.timedelta(minutes=segment.refresh_interval_minutes)
            segment.save(update_fields=["next_refresh_at"])
        ids = [s.pk for s in due]
        for segment_id in ids:
            transaction.on_commit(
                lambda s=segment_id: refresh_task.delay(str(s), "", "schedule"), robust=True
            )
    return ids


def _notify(segment: Segment, *, entered: Iterable[Any], left: Iterable[Any]) -> int:
    """Write one delivery per subscription, event and batch of ids; enqueue them after commit."""
    from segmentation.segments.tasks import webhook_deliver

    batches = {
        WebhookEvent.ENTER: [str(i) for i in entered],
        WebhookEvent.LEAVE: [str(i) for i in left],
    }
    if not any(batches.values()):
        return 0
    created: list[WebhookDelivery] = []
    for subscription in WebhookSubscription.objects.filter(segment=segment, is_active=True):
        for event, ids in batches.items():
            if event not in subscription.events:
                continue
            for start in range(0, len(ids), DELIVERY_BATCH):
                chunk = ids[start : start + DELIVERY_BATCH]
                created.append(
                    WebhookDelivery(
                        subscription=subscription,
                        event=event,
                        customer_ids=chunk,
                        count=len(chunk),
                        status=DeliveryStatus.PENDING,
                    )
                )
    WebhookDelivery.objects.bulk_create(created)
    for delivery in created:
        transaction.on_commit(lambda d=delivery.pk: webhook_deliver.delay(str(d)), robust=True)
    return len(created)


def webhook_subscription_create(
    *, segment: Segment, url: str, events: Sequence[str], actor: str
) -> tuple[WebhookSubscription, str]:
    """Subscribe `url` to the segment's enter/leave changes. Returns the subscription and its
    signing secret, which is shown this once and never stored. Audited (without the URL: it
    may carry a token or an address)."""
    from urllib.parse import urlsplit

    from cdp.webhooks import new_salt
    from segmentation.segments.webhooks import webhook_secret

    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ApplicationError(
            "webhook_url_invalid",
            "the URL must be http(s) with a host",
            fields={"url": ["invalid"]},
        )
    chosen = list(dict.fromkeys(events)) or [WebhookEvent.ENTER, WebhookEvent.LEAVE]
    unknown = [e for e in chosen if e not in WebhookEvent.values]
    if unknown:
        raise ApplicationError(
            "webhook_events_invalid",
            "events must be 'enter' and/or 'leave'",
            fields={"events": ["unknown event"]},
        )
    with transaction.atomic():
        subscription = WebhookSubscription.objects.create(
            segment=segment, url=url, events=chosen, secret_salt=new_salt(), created_by=actor
        )
        audit_record(
            actor=actor,
            action="segment.webhook_create",
            object_type="segments.webhooksubscription",
            object_id=str(subscription.pk),
            details={"segment": str(segment.pk), "events": chosen},
        )
    return subscription, webhook_secret(subscription)


def webhook_subscription_delete(*, subscription: WebhookSubscription, actor: str) -> None:
    """Stop deliveries to a subscription (its delivery log goes with it). Audited."""
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="segment.webhook_delete",
            object_type="segments.webhooksubscription",
            object_id=str(subscription.pk),
            details={"segment": str(subscription.segment_id)},
        )
        subscription.delete()
