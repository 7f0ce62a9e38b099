"""Celery tasks of CSV imports: thin callers of the services, ids only."""

from __future__ import annotations

from celery import shared_task

from cdp.ingest.imports import services


@shared_task(name="cdp.ingest.imports.import_job_run", acks_late=True)
def import_job_run(job_id: str) -> str:
    """Run (or resume) an import job; when its time budget runs out, continue in a new task."""
    status = services.import_job_run(job_id=job_id)
    if status == "continue":
        import_job_run.delay(job_id)
    return status


@shared_task(name="cdp.ingest.imports.import_jobs_resume")
def import_jobs_resume(stale_seconds: int = 300) -> int:
    """Re-enqueue jobs whose worker died (for the beat schedule)."""
    return len(services.import_jobs_resume(stale_seconds=stale_seconds))


@shared_task(name="cdp.ingest.imports.import_files_purge")
def import_files_purge() -> int:
    """Delete encrypted uploads past their retention (for the beat schedule)."""
    return services.import_files_purge()
