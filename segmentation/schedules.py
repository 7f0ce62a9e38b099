"""Celery beat entries for segmentation; merged into CELERY_BEAT_SCHEDULE in settings."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "segmentation-refresh": {
        "task": "segmentation.tasks.scheduled_refresh",
        # Nightly, after the day's events are in: features as of now, then a k-means run.
        "schedule": crontab(hour=3, minute=15),
        "options": {"expires": 6 * 3600},
    },
}
