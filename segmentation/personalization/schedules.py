"""Celery beat entries for personalization; merged into CELERY_BEAT_SCHEDULE in settings."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "personalization-training": {
        "task": "segmentation.personalization.tasks.scheduled_training",
        # Weekly, after the nightly feature refresh: retrain, rescore, drift reports.
        "schedule": crontab(hour=4, minute=30, day_of_week=1),
        "options": {"expires": 12 * 3600},
    },
}
