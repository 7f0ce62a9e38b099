"""Running an import in the test process (no worker) and checking that its counts reconcile."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

from cdp.ingest.imports.services import (
    import_job_create,
    import_job_run,
    import_source_get_or_create,
)
from cdp.ingest.models import ImportJob, ImportStatus

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def pace_chunks(monkeypatch: Any, seconds: float) -> None:
    """Slow every profiles chunk by `seconds`: the importer can finish a test file within one
    poll of a progress display, which must be seen moving."""
    from cdp.ingest.imports import services

    real_chunk = services.profiles_chunk

    def paced_chunk(*args: Any, **kwargs: Any) -> Any:
        time.sleep(seconds)
        return real_chunk(*args, **kwargs)

    monkeypatch.setattr(services, "profiles_chunk", paced_chunk)


def upload(content: bytes, *, source: str = "crm", start: bool = False) -> ImportJob:
    """A profiles upload of `content` (mapping guessed): queued when `start`, else waiting for
    its mapping to be confirmed."""
    return import_job_create(
        source=import_source_get_or_create(name=source, actor="test"),
        kind="profiles",
        file=io.BytesIO(content),
        file_name="people.csv",
        actor="test",
        start=start,
    )


def run_import(
    content: bytes | Path,
    *,
    kind: str = "profiles",
    source: str = "crm",
    mapping: dict[str, str] | None = None,
    options: dict[str, Any] | None = None,
    name: str = "upload.csv",
) -> ImportJob:
    """Create a job (guessed or given mapping), run it to the end here, and return it fresh."""
    src = import_source_get_or_create(name=source, actor="test")
    handle = content.open("rb") if isinstance(content, Path) else io.BytesIO(content)
    with handle:
        job = import_job_create(
            source=src,
            kind=kind,
            file=handle,
            file_name=name,
            actor="test",
            mapping=mapping,
            options=options,
            start=True,
        )
    if job.status != ImportStatus.FAILED:
        status = "continue"
        while status == "continue":
            status = import_job_run(job_id=job.pk, actor="test")
    job.refresh_from_db()
    return job


def assert_reconciles(job: ImportJob) -> None:
    assert job.rows_done == job.created + job.updated + job.duplicates + job.rejected
    assert job.rejected == job.row_errors.values("row").distinct().count()
