"""Work that follows ingestion, off the request path."""

from __future__ import annotations

import uuid

from celery import shared_task

from cdp.profiles.models import Customer


@shared_task(name="cdp.ingest.tasks.customers_touched", time_limit=300, soft_time_limit=270)
def customers_touched(ids: list[str]) -> int:
    """Customers whose profile or events just changed (ids only, never personal data).

    The hook for real-time work after ingestion: segment re-checks arrive with segmentation.
    For now it counts the ids that still exist; safe to run twice.
    """
    wanted = [uuid.UUID(i) for i in ids]
    return Customer.objects.filter(id__in=wanted).count()
