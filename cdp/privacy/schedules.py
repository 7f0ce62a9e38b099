"""Celery beat entries for the privacy package; merged into CELERY_BEAT_SCHEDULE in settings."""

from __future__ import annotations

from typing import Any

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "privacy-recipient-notices-resume": {
        "task": "cdp.privacy.tasks.recipient_notices_resume",
        # Every ten minutes: a notice whose Celery retry was lost with a worker is sent again.
        "schedule": 600.0,
        "options": {"expires": 590},
    },
}
