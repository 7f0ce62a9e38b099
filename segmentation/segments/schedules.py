"""Celery beat entries for segments; merged into CELERY_BEAT_SCHEDULE in settings.

One entry every minute finds the segments whose own interval (Segment.refresh_interval_minutes,
editable in the admin) has come round, so schedules change without restarting beat.
"""

from __future__ import annotations

from typing import Any

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "segments-refresh-due": {
        "task": "segmentation.segments.tasks.segments_refresh_due",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
}
