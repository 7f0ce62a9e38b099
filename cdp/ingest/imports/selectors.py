"""Reads of import jobs: progress (rows/s, time left), masked preview, error report."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from cdp.crypto.masking import mask_email, mask_phone, mask_text
from cdp.ingest.imports.reader import Dialect, ImportFileError, RowStream
from cdp.ingest.imports.storage import DecryptingReader, job_file_path, unwrap_job_key
from cdp.ingest.models import ImportJob, ImportRowError, ImportStatus

PREVIEW_ROWS = 5
ERROR_COLUMNS = ("row", "column", "code", "reason")


def import_job_progress(job: ImportJob) -> dict[str, Any]:
    """Progress for the admin's live bar and the API: share done (by bytes, since the number of
    rows is known only at the end), rows per second and the estimated seconds left."""
    done = job.status == ImportStatus.COMPLETED
    fraction = 1.0 if done else (job.bytes_done / job.file_bytes if job.file_bytes else 0.0)
    rate = job.rows_done / job.run_seconds if job.run_seconds > 0 else 0.0
    seconds_left = None
    if job.status in (ImportStatus.RUNNING, ImportStatus.QUEUED) and 0 < fraction < 1:
        seconds_left = round(job.run_seconds * (1 - fraction) / fraction, 1)
    return {
        "id": str(job.id),
        "status": job.status,
        "kind": job.kind,
        "fraction": round(min(fraction, 1.0), 4),
        "rows_done": job.rows_done,
        "rows_per_second": round(rate, 1),
        "seconds_left": seconds_left,
        "counts": import_job_counts(job),
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
    }


def import_job_counts(job: ImportJob) -> dict[str, Any]:
    """rows_read = created + updated + duplicates + rejected, always (checked by the tests)."""
    return {
        "rows_read": job.rows_done,
        "created": job.created,
        "updated": job.updated,
        "duplicates": job.duplicates,
        "rejected": job.rejected,
        **{k: v for k, v in sorted((job.stats or {}).items())},
    }


def import_job_quality(job: ImportJob) -> dict[str, Any]:
    return {k: v for k, v in (job.quality or {}).items() if not k.startswith("_")}


def import_job_errors(job: ImportJob) -> Any:
    return ImportRowError.objects.filter(job=job).order_by("row", "id")


def import_job_error_csv(job: ImportJob) -> Iterator[str]:
    """The error report as CSV lines (row, column, code, reason), streamed; no values."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(ERROR_COLUMNS)
    yield buffer.getvalue()
    for error in import_job_errors(job).iterator(chunk_size=2_000):
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([error.row, error.column, error.code, error.reason])
        yield buffer.getvalue()


def _mask(target: str, value: str) -> str:
    if not value:
        return ""
    if target == "email":
        return mask_email(value.strip().lower())
    if target == "phone":
        return mask_phone(value)
    if target.startswith("attribute:") or target in (
        "country",
        "quantity",
        "price",
        "amount",
        "currency",
        "date",
        "product_id",
        "invoice",
        "category",
    ):
        return value[:40]
    return mask_text(value)


def import_job_preview(job: ImportJob, rows: int = PREVIEW_ROWS) -> list[list[str]]:
    """The first rows, masked per the proposed mapping (personal values as `J***`), so the
    mapping can be checked without showing personal data."""
    if job.file_deleted_at is not None or not job.headers:
        return []
    key = unwrap_job_key(job.id, job.kek_id, bytes(job.wrapped_key))
    out: list[list[str]] = []
    try:
        with DecryptingReader(job_file_path(job.id), job_id=job.id, key=key) as reader:
            stream = RowStream(reader, Dialect(job.encoding, job.delimiter))
            for raw in stream:
                out.append(
                    [
                        _mask(job.mapping.get(h, "trait:"), v)
                        for h, v in zip(job.headers, raw.values, strict=False)
                    ]
                )
                if len(out) >= rows:
                    break
    except (ImportFileError, OSError):
        return out
    return out
