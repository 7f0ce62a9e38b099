"""Personalization tasks: thin callers of services. Arguments are run ids only."""

from __future__ import annotations

import uuid

from celery import shared_task

from segmentation.personalization import services


@shared_task(name="segmentation.personalization.tasks.model_run_execute")
def model_run_execute(run_id: str) -> int:
    """Train and score a queued model run; a finished run is left alone. Returns rows scored."""
    run = services.model_run_execute(run_id=uuid.UUID(run_id))
    return run.scored if run else 0


@shared_task(name="segmentation.personalization.tasks.scheduled_training")
def scheduled_training() -> list[str]:
    """Beat (personalization.schedules): queue a run of every model kind."""
    return [str(pk) for pk in services.scheduled_training()]
