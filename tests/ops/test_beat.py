"""Every periodic job in the beat schedule names a task a worker actually has."""

from __future__ import annotations

from django.conf import settings

from cdp.celery import app


def test_every_beat_entry_names_a_registered_task() -> None:
    app.loader.import_default_modules()
    missing = {
        name: entry["task"]
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
        if entry["task"] not in app.tasks
    }
    assert missing == {}


def test_stalled_imports_are_resumed_and_expired_uploads_purged_on_schedule() -> None:
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {
        "cdp.ingest.imports.import_jobs_resume",
        "cdp.ingest.imports.import_files_purge",
    } <= tasks
