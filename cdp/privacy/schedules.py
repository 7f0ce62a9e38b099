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
    "privacy-residue-sweep": {
        "task": "cdp.privacy.tasks.residue_sweep",
        # Every fifteen minutes: the columns an erasure left to the sweep (large tables' text,
        # JSON and unindexed ids) are searched for all erasures since the last sweep. A sweep
        # with nothing to cover costs one query.
        "schedule": 900.0,
        "options": {"expires": 890},
    },
}
