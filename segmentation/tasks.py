"""Segmentation tasks: thin callers of services. Arguments are run ids only."""

from __future__ import annotations

import uuid

from celery import shared_task

from segmentation import services


@shared_task(name="segmentation.tasks.feature_run_execute")
def feature_run_execute(run_id: str) -> int:
    """Compute a queued feature run; a finished run is left alone. Returns rows written."""
    run = services.feature_run_execute(run_id=uuid.UUID(run_id))
    return run.customers if run else 0


@shared_task(name="segmentation.tasks.clustering_run_execute")
def clustering_run_execute(run_id: str) -> int:
    """Execute a queued clustering run; a finished run is left alone. Returns the population."""
    run = services.clustering_run_execute(run_id=uuid.UUID(run_id))
    return run.population if run else 0


@shared_task(name="segmentation.tasks.scheduled_refresh")
def scheduled_refresh() -> str:
    """Beat (segmentation.schedules): fresh features, then a default clustering run."""
    return str(services.scheduled_refresh().pk)
