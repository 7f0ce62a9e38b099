"""Segment tasks: thin callers of services. Arguments are ids and plain values only."""

from __future__ import annotations

import uuid

from celery import shared_task

from segmentation.segments import services
from segmentation.segments.webhooks import webhook_delivery_attempt


@shared_task(name="segmentation.segments.tasks.segment_refresh")
def segment_refresh(segment_id: str, actor: str = "", trigger: str = "schedule") -> int | None:
    """Full refresh of one segment (diff only). Returns the refresh id; safe to run twice."""
    refresh = services.segment_refresh(
        segment_id=uuid.UUID(segment_id), actor=actor, trigger=trigger
    )
    return refresh.pk if refresh else None


@shared_task(name="segmentation.segments.tasks.segments_refresh_due", time_limit=60)
def segments_refresh_due() -> int:
    """Scheduled every minute (see segmentation.segments.schedules): enqueue due refreshes."""
    return len(services.segments_refresh_due())


@shared_task(name="segmentation.segments.tasks.segment_members_recheck", time_limit=300)
def segment_members_recheck(customer_ids: list[str]) -> int:
    """Real-time re-check of some customers against every real-time segment."""
    return services.segment_members_recheck([uuid.UUID(i) for i in customer_ids])


@shared_task(name="segmentation.segments.tasks.webhook_deliver", bind=True, max_retries=None)
def webhook_deliver(self, delivery_id: str) -> str:  # type: ignore[no-untyped-def]
    """One signed POST; on failure, retried by Celery with exponential backoff (the delivery row
    counts attempts and gives up after CDP_WEBHOOK_MAX_ATTEMPTS)."""
    delay = webhook_delivery_attempt(uuid.UUID(delivery_id))
    if delay is not None:
        raise self.retry(countdown=delay)
    return delivery_id
