"""Work that follows ingestion, off the request path."""

from __future__ import annotations

import uuid

from celery import shared_task

from cdp.ingest.hooks import touched_hooks_run
from cdp.profiles.models import Customer


@shared_task(name="cdp.ingest.tasks.customers_touched", time_limit=300, soft_time_limit=270)
def customers_touched(ids: list[str]) -> int:
    """Customers whose profile or events just changed (ids only, never personal data).

    Runs the hooks of `cdp.ingest.hooks` (real-time segment checks) for the ids that still
    exist and returns their number; safe to run twice.
    """
    wanted = [uuid.UUID(i) for i in ids]
    existing = list(Customer.objects.filter(id__in=wanted).values_list("id", flat=True))
    touched_hooks_run(existing)  # real-time segment checks (registered by segmentation)
    return len(existing)
