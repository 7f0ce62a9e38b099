"""Celery beat entries for consent; merged into CELERY_BEAT_SCHEDULE in settings."""

from __future__ import annotations

from typing import Any

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "consent-expire": {
        "task": "consent.tasks.expire_consents",
        # Every five minutes: an expired grant is already refused by the selector, so this only
        # bounds how long derived data outlives it.
        "schedule": 300.0,
        "options": {"expires": 290},
    },
}
