"""Celery beat entries for CSV imports; merged into CELERY_BEAT_SCHEDULE in settings."""

from __future__ import annotations

from typing import Any

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "imports-resume": {
        # A job whose worker died (no heartbeat for 5 minutes) continues from its last
        # committed chunk; acks_late already redelivers most, this catches the rest.
        "task": "cdp.ingest.imports.import_jobs_resume",
        "schedule": 120.0,
        "options": {"expires": 110},
    },
    "imports-purge": {
        # Encrypted uploads kept by CDP_IMPORT_RETENTION_DAYS are deleted once they expire.
        "task": "cdp.ingest.imports.import_files_purge",
        "schedule": 3600.0,
        "options": {"expires": 3500},
    },
}
