"""Import jobs: upload (stored encrypted), mapping, the chunked run, resumption and clean-up.

`import_job_run` streams the decrypted file, cleans rows and writes them one chunk per
transaction. Each chunk's transaction also advances the job's `rows_done` and counts, after
checking (under a row lock) that nobody else advanced them: a run that is killed resumes from
the last committed chunk, and two runs of one job never import a row twice.

Settings (environment or Django settings): `CDP_IMPORT_CHUNK_ROWS` (5,000),
`CDP_IMPORT_RETENTION_DAYS` (0: the encrypted upload is deleted as soon as the job ends),
`CDP_IMPORT_TASK_SECONDS` (600: a task then hands the rest of the file to a fresh task),
`CDP_IMPORT_MAX_FIELD_BYTES` (1 MiB), `CDP_IMPORT_DIR` (var/imports),
`CDP_IMPORT_ABANDONED_DAYS` (7: an upload still waiting for its column mapping is then deleted
and its job fails).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import IO, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from cdp.audit.services import audit_record
from cdp.env import env_int
from cdp.ingest.imports import quality
from cdp.ingest.imports.chunks import Chunk, import_chunks
from cdp.ingest.imports.mapping import guess_mapping, validate_mapping
from cdp.ingest.imports.process import ChunkResult, profiles_chunk, transactions_chunk
from cdp.ingest.imports.reader import (
    SAMPLE_BYTES,
    Dialect,
    ImportFileError,
    RawRow,
    RowStream,
    sniff,
)
from cdp.ingest.imports.resolve import DEFAULT_RULES, RULES
from cdp.ingest.imports.rows import (
    Context,
    ProfileRow,
    RowError,
    TransactionRow,
    clean_profile,
    clean_transaction,
)
from cdp.ingest.imports.storage import (
    DecryptingReader,
    encrypt_to_file,
    job_file_path,
    new_job_key,
    state_open,
    state_seal,
    unwrap_job_key,
)
from cdp.ingest.models import (
    ColumnMapping,
    ImportJob,
    ImportKind,
    ImportRowError,
    ImportStatus,
    Source,
    SourceKind,
)
from cdp.ingest.services import source_create
from cdp.memory import collector_paused
from cdp.profiles.resolution import blocked_values

logger = logging.getLogger(__name__)
OPTION_KEYS = ("default_region", "day_first", "currency", "rules")


def _setting(name: str, default: int) -> int:
    value = getattr(settings, name, None)
    return int(value) if value is not None else env_int(name, default, minimum=0)


def chunk_rows() -> int:
    return max(1, _setting("CDP_IMPORT_CHUNK_ROWS", 5_000))


def retention_days() -> int:
    return _setting("CDP_IMPORT_RETENTION_DAYS", 0)


def abandoned_days() -> int:
    return _setting("CDP_IMPORT_ABANDONED_DAYS", 7)


def task_seconds() -> int:
    return max(1, _setting("CDP_IMPORT_TASK_SECONDS", 600))


class Superseded(Exception):
    """Another run advanced the job meanwhile: this one stops without writing."""


def purposes_known() -> set[str]:
    from consent.models import Purpose

    return set(Purpose.objects.filter(is_active=True).values_list("code", flat=True))


def clean_options(options: dict[str, Any] | None) -> dict[str, Any]:
    from cdp.ingest.imports.mapping import MappingError

    options = dict(options or {})
    unknown = set(options) - set(OPTION_KEYS)
    if unknown:
        raise MappingError(
            "import_options_invalid",
            "unknown import options",
            fields={k: "unknown option" for k in sorted(unknown)[:10]},
        )
    region = str(options.get("default_region") or "").strip().upper()
    if region and (len(region) != 2 or not region.isalpha()):
        raise MappingError(
            "import_options_invalid",
            "default_region must be an ISO 3166 alpha-2 code",
            fields={"default_region": "two letters"},
        )
    currency = str(options.get("currency") or "").strip().upper()
    if currency and (len(currency) != 3 or not currency.isalpha()):
        raise MappingError(
            "import_options_invalid",
            "currency must be an ISO 4217 code",
            fields={"currency": "three letters"},
        )
    rules = options.get("rules") or list(DEFAULT_RULES)
    if isinstance(rules, str):
        rules = [r.strip() for r in rules.split(",") if r.strip()]
    if not isinstance(rules, list) or not rules or any(r not in RULES for r in rules):
        raise MappingError(
            "import_options_invalid",
            "rules must be a list of " + ", ".join(RULES),
            fields={"rules": "unknown rule"},
        )
    day_first = options.get("day_first", False)
    if isinstance(day_first, str):
        day_first = day_first.strip().lower() in ("1", "true", "yes", "on")
    return {
        "default_region": region,
        "day_first": bool(day_first),
        "currency": currency,
        "rules": list(dict.fromkeys(rules)),
    }


def import_source_get_or_create(*, name: str, actor: str) -> Source:
    """The source an upload belongs to; created (kind import, unused write key) if new."""
    source = Source.objects.filter(name=name.strip()).first()
    if source is None:
        source = source_create(name=name, actor=actor, kind=SourceKind.IMPORT).source
    return source


def _job_key(job: ImportJob) -> bytes:
    """The job's data key: it encrypts the upload and the quality report's running state."""
    return unwrap_job_key(job.id, job.kek_id, bytes(job.wrapped_key))


def _open(job: ImportJob, key: bytes | None = None) -> DecryptingReader:
    return DecryptingReader(job_file_path(job.id), job_id=job.id, key=key or _job_key(job))


def _fail(job: ImportJob, code: str, message: str) -> None:
    job.status = ImportStatus.FAILED
    job.error_code = code
    job.error_message = message[:500]
    job.finished_at = timezone.now()
    _schedule_file_deletion(job)
    job.save()


def import_job_create(
    *,
    source: Source,
    kind: str,
    file: IO[bytes],
    file_name: str,
    actor: str,
    mapping: dict[str, str] | None = None,
    options: dict[str, Any] | None = None,
    start: bool = False,
) -> ImportJob:
    """Store an upload encrypted, sniff it, and propose a mapping (the given one, the source's
    saved one, or a guess). With `start`, the job is queued at once (API and command line);
    otherwise it waits for the mapping to be confirmed (admin).

    A file that cannot be read as CSV at all (empty, binary, no header) gives a FAILED job with
    its error code, so the upload is still on record; mapping errors raise MappingError.
    """
    if kind not in ImportKind.values:
        from cdp.ingest.imports.mapping import MappingError

        raise MappingError("import_kind_invalid", "kind must be profiles or transactions")
    job = ImportJob(
        id=uuid.uuid4(), source=source, kind=kind, file_name=file_name[:255], created_by=actor
    )
    key, job.kek_id, wrapped = new_job_key(job.id)
    job.wrapped_key = wrapped
    path = job_file_path(job.id)
    job.file_bytes, job.file_sha256 = encrypt_to_file(file, job_id=job.id, key=key, path=path)
    job.stored_path = path.name
    saved = ColumnMapping.objects.filter(source=source, kind=kind).first()
    try:
        job.options = clean_options(_over_saved(options, saved))
        with _open(job) as reader:
            dialect = sniff(reader.read(SAMPLE_BYTES))
        job.encoding, job.delimiter = dialect.encoding, dialect.delimiter
        with _open(job) as reader:
            job.headers = RowStream(reader, dialect).header
    except ImportFileError as exc:
        with transaction.atomic():
            _fail(job, exc.code, exc.message)
            _audit_create(job, actor)
        return job
    purposes = purposes_known()
    if mapping is None and saved is not None and set(saved.mapping) == set(job.headers):
        mapping = saved.mapping
    proposed = mapping if mapping is not None else guess_mapping(job.headers, kind, purposes)
    if start or mapping is not None:
        job.mapping = validate_mapping(proposed, job.headers, kind, purposes)
    else:
        job.mapping = proposed
    with transaction.atomic():
        job.status = ImportStatus.QUEUED if start else ImportStatus.MAPPING
        job.save(force_insert=True)
        _audit_create(job, actor)
        if start:
            _enqueue_on_commit(job.id)
    return job


def _over_saved(
    options: dict[str, Any] | None, saved: ColumnMapping | None
) -> dict[str, Any] | None:
    """The caller's options over those saved for the source: an option left empty (what the
    command line and the API send when it is not given) keeps the saved value, so a source's
    default region and day-first switch are reused from every entry point, not only the admin."""
    if options is None:
        return saved.options if saved is not None else None
    if saved is None or not saved.options:
        return options
    given = {k: v for k, v in options.items() if v not in (None, "", False, [])}
    return {**saved.options, **given}


def _audit_create(job: ImportJob, actor: str) -> None:
    audit_record(
        actor=actor,
        action="ingest.import.create",
        object_type="ingest.importjob",
        object_id=str(job.id),
        details={
            "source": str(job.source_id),
            "kind": job.kind,
            "bytes": job.file_bytes,
            "status": job.status,
        },
    )


def import_job_configure(
    *,
    job: ImportJob,
    mapping: dict[str, str],
    options: dict[str, Any] | None,
    actor: str,
    save_for_source: bool = False,
    priority: int | None = None,
) -> ImportJob:
    """Confirm (or correct) the mapping and start the job; optionally save the mapping for the
    source, so its next upload with the same headers is mapped the same way."""
    from cdp.ingest.imports.mapping import MappingError

    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job.pk)
        if job.status != ImportStatus.MAPPING:
            raise MappingError(
                "import_not_editable", "only a job waiting for its mapping can be changed"
            )
        job.mapping = validate_mapping(mapping, job.headers, job.kind, purposes_known())
        job.options = clean_options(options if options is not None else job.options)
        job.status = ImportStatus.QUEUED
        job.save(update_fields=["mapping", "options", "status"])
        if save_for_source:
            column_mapping_save(
                source=job.source,
                kind=job.kind,
                mapping=job.mapping,
                options=job.options,
                actor=actor,
                priority=priority,
            )
        audit_record(
            actor=actor,
            action="ingest.import.start",
            object_type="ingest.importjob",
            object_id=str(job.id),
            details={"columns": len(job.mapping), "saved_for_source": save_for_source},
        )
        _enqueue_on_commit(job.id)
    return job


def column_mapping_save(
    *,
    source: Source,
    kind: str,
    mapping: dict[str, str],
    options: dict[str, Any],
    actor: str,
    priority: int | None = None,
) -> ColumnMapping:
    """Save the mapping reused for the source's next uploads (headers only, no values)."""
    with transaction.atomic():
        saved, _ = ColumnMapping.objects.update_or_create(
            source=source,
            kind=kind,
            defaults={
                "mapping": mapping,
                "options": options,
                "updated_by": actor,
                **({"priority": priority} if priority is not None else {}),
            },
        )
        audit_record(
            actor=actor,
            action="ingest.import.mapping_save",
            object_type="ingest.columnmapping",
            object_id=str(saved.pk),
            details={"kind": kind, "columns": len(mapping)},
        )
    return saved


def _enqueue_on_commit(job_id: uuid.UUID) -> None:
    def enqueue() -> None:
        from cdp.ingest.imports.tasks import import_job_run as task

        task.delay(str(job_id))

    transaction.on_commit(enqueue, robust=True)


def _enqueue_touched(ids: list[str]) -> None:
    from cdp.ingest.tasks import customers_touched

    for start in range(0, len(ids), 1_000):
        customers_touched.delay(ids[start : start + 1_000])


def _schedule_file_deletion(job: ImportJob) -> None:
    days = retention_days()
    if days:
        job.delete_after = timezone.now() + dt.timedelta(days=days)
        return
    job_file_path(job.id).unlink(missing_ok=True)
    job.file_deleted_at = timezone.now()


def import_files_purge(*, now: dt.datetime | None = None) -> int:
    """Delete the encrypted uploads whose retention ran out, and those whose column mapping
    was never confirmed within `CDP_IMPORT_ABANDONED_DAYS` (their jobs fail as abandoned: an
    upload holds personal data, and one nobody imports must not stay forever); returns how
    many."""
    now = now or timezone.now()
    count = _abandoned_uploads_purge(now)
    jobs = ImportJob.objects.filter(file_deleted_at__isnull=True, delete_after__lte=now)
    for job in jobs:
        job_file_path(job.id).unlink(missing_ok=True)
        ImportJob.objects.filter(pk=job.pk).update(file_deleted_at=now)
        count += 1
    return count


def _abandoned_uploads_purge(now: dt.datetime) -> int:
    days = abandoned_days()
    if not days:
        return 0
    stale = ImportJob.objects.filter(
        status=ImportStatus.MAPPING,
        file_deleted_at__isnull=True,
        created_at__lte=now - dt.timedelta(days=days),
    ).values_list("pk", flat=True)
    count = 0
    for pk in stale:
        with transaction.atomic():
            # Locked and re-read: a mapping confirmed meanwhile wins, and its file stays.
            job = ImportJob.objects.select_for_update().filter(pk=pk).first()
            if job is None or job.status != ImportStatus.MAPPING:
                continue
            job.status = ImportStatus.FAILED
            job.error_code = "import_abandoned"
            job.error_message = (
                f"the column mapping was not confirmed within {days} days, so the upload was "
                "deleted unprocessed; upload the file again to import it"
            )
            job.finished_at = job.file_deleted_at = now
            job.save()
        job_file_path(pk).unlink(missing_ok=True)
        logger.info("import %s: abandoned in mapping, upload deleted", pk)
        count += 1
    return count


def _higher_sources(job: ImportJob) -> list[str]:
    mine = ColumnMapping.objects.filter(source=job.source, kind=job.kind).first()
    level = mine.priority if mine else 0
    return list(
        ColumnMapping.objects.filter(priority__gt=level)
        .exclude(source=job.source)
        .values_list("source__name", flat=True)
    )


class _Runner:
    """One run of a job: the file from the last committed row, chunk by chunk."""

    def __init__(self, job: ImportJob, actor: str) -> None:
        self.job = job
        self.actor = actor
        self.options = job.options or clean_options(None)
        self.ctx = Context(
            headers=list(job.headers),
            mapping=dict(job.mapping),
            source_name=job.source.name,
            region=self.options.get("default_region") or None,
            day_first=bool(self.options.get("day_first")),
            currency=self.options.get("currency") or "",
            rules=tuple(self.options.get("rules") or DEFAULT_RULES),
            blocked=blocked_values(),
        )
        self.clean: Callable[[RawRow, Context], Any] = (
            clean_profile if job.kind == ImportKind.PROFILES else clean_transaction
        )
        self.higher = _higher_sources(job) if job.kind == ImportKind.PROFILES else []
        self.key = _job_key(job)
        saved = job.quality or {}
        if "_state_sealed" in saved:
            self.state = json.loads(state_open(job.id, self.key, saved["_state_sealed"]))
        else:  # a job started before the state was sealed kept it plain ("_state")
            self.state = saved.get("_state") or quality.new_state()
        self.rng = random.Random(job.id.int ^ job.rows_done)  # noqa: S311 (sampling, not secrets)
        self.position = 0

    def _observe(self, state: dict[str, Any], clean: Any) -> None:
        if isinstance(clean, TransactionRow):
            quality.observe_number(state, "quantity", float(clean.quantity), self.rng)
            quality.observe_number(state, "amount", float(clean.amount), self.rng)
            if clean.price is not None:
                quality.observe_number(state, "price", float(clean.price), self.rng)
        elif isinstance(clean, ProfileRow):
            for group, personal in ((clean.attributes, False), (clean.traits, True)):
                for key, value in group.items():
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        quality.observe_number(
                            state, key, float(value), self.rng, personal=personal
                        )

    def commit(self, chunk: Chunk, started: float) -> None:
        """Write one cleaned chunk, and advance the job, in one transaction."""
        batch = chunk.rows
        self.position = chunk.position
        expected = self.job.rows_done
        for attempt in range(3):
            state = copy.deepcopy(self.state)
            result = ChunkResult()
            try:
                with transaction.atomic():
                    locked = ImportJob.objects.select_for_update().get(pk=self.job.pk)
                    if locked.rows_done != expected or locked.status != ImportStatus.RUNNING:
                        raise Superseded
                    good = []
                    quality.observe_presence_rows(
                        state, self.ctx.headers, (raw.values for raw in batch)
                    )
                    for clean in chunk.cleaned:
                        self._observe(state, clean)
                        if isinstance(clean, list):
                            result.rejected += 1
                            result.errors.extend(clean)
                        else:
                            good.append(clean)
                    if self.job.kind == ImportKind.PROFILES:
                        profiles_chunk(
                            good,
                            job=locked,
                            rules=self.ctx.rules,
                            higher_sources=self.higher,
                            actor=self.actor,
                            result=result,
                        )
                    else:
                        transactions_chunk(
                            good,
                            job=locked,
                            source=self.job.source,
                            rules=self.ctx.rules,
                            actor=self.actor,
                            result=result,
                        )
                    self._save_chunk(locked, batch, result, state, started)
                break
            except IntegrityError:
                # A concurrent writer (the tracking API, another import) linked one of the
                # chunk's identifiers first: plan again from what it committed.
                if attempt == 2:
                    raise
                logger.info("import %s: chunk conflicted, retrying", self.job.pk)
        self.state = state

    def _save_chunk(
        self,
        locked: ImportJob,
        batch: list[RawRow],
        result: ChunkResult,
        state: dict[str, Any],
        started: float,
    ) -> None:
        ImportRowError.objects.bulk_create(
            [
                ImportRowError(
                    job=locked, row=e.row, column=e.column[:255], code=e.code, reason=e.reason
                )
                for e in result.errors
            ]
        )
        locked.rows_done = batch[-1].number - 1
        locked.bytes_done = min(self.position, locked.file_bytes)
        locked.created += result.created
        locked.updated += result.updated
        locked.duplicates += result.duplicates
        locked.rejected += result.rejected
        stats = dict(locked.stats or {})
        for name, n in result.stats.items():
            stats[name] = stats.get(name, 0) + n
        locked.stats = stats
        sealed = state_seal(self.job.id, self.key, json.dumps(state).encode())
        kept = {k: v for k, v in (locked.quality or {}).items() if k != "_state"}
        locked.quality = {**kept, "_state_sealed": sealed}
        now = time.monotonic()
        locked.run_seconds += now - started
        locked.heartbeat_at = timezone.now()
        locked.save()
        if result.stats.get("profiles_created") or result.merges:
            audit_record(
                actor=self.actor,
                action="ingest.import.chunk",
                object_type="ingest.importjob",
                object_id=str(locked.id),
                details={
                    "rows": len(batch),
                    "created": result.created,
                    "updated": result.updated,
                    "profiles_created": result.stats.get("profiles_created", 0),
                    "merges": result.merges,
                },
            )
        self.job = locked
        ids = sorted(str(c) for c in result.touched)
        if ids:
            transaction.on_commit(lambda: _enqueue_touched(ids), robust=True)


def import_job_run(*, job_id: uuid.UUID | str, actor: str = "system:import") -> str:
    """Process a queued or interrupted job from its last committed row.

    Returns the job's status, or "continue" when the time budget ran out and the caller should
    run it again (the task re-enqueues itself). Safe to run twice, also concurrently.
    """
    with transaction.atomic():
        job = (
            ImportJob.objects.select_for_update().select_related("source").filter(pk=job_id).first()
        )
        if job is None:
            return "missing"
        if job.status not in (ImportStatus.QUEUED, ImportStatus.RUNNING):
            return job.status
        if job.file_deleted_at is not None:
            _fail(job, "import_file_gone", "the uploaded file was deleted before processing")
            return job.status
        job.status = ImportStatus.RUNNING
        job.started_at = job.started_at or timezone.now()
        job.heartbeat_at = timezone.now()
        job.attempts += 1
        job.save(update_fields=["status", "started_at", "heartbeat_at", "attempts"])
    runner = _Runner(job, actor)
    deadline = time.monotonic() + task_seconds()
    size = chunk_rows()
    try:
        with _open(job, runner.key) as reader:
            chunks = import_chunks(
                RowStream(reader, Dialect(job.encoding, job.delimiter)),
                reader,
                rows_done=job.rows_done,
                size=size,
                clean=runner.clean,
                ctx=runner.ctx,
            )
            started = time.monotonic()
            while True:
                # A chunk's cleaning and writing allocate a few hundred thousand containers, none
                # in a cycle: with the collector on, ~a fifth of the run's CPU went to traversing
                # them (and the worker's whole heap) again and again. It runs once per chunk now.
                with collector_paused():
                    chunk = next(chunks, None)
                    if chunk is not None and chunk.rows:
                        runner.commit(chunk, started)
                if chunk is None:
                    break
                if chunk.rows:
                    started = time.monotonic()
                if chunk.error is not None:
                    _finish(runner.job.pk, actor, runner.state, error=chunk.error)
                    return ImportStatus.FAILED
                if len(chunk.rows) >= size and time.monotonic() > deadline:
                    return "continue"
    except Superseded:
        return "superseded"
    _finish(runner.job.pk, actor, runner.state)
    return ImportStatus.COMPLETED


def _finish(
    job_id: uuid.UUID,
    actor: str,
    state: dict[str, Any],
    *,
    error: ImportFileError | None = None,
) -> None:
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        if job.status != ImportStatus.RUNNING:
            return
        job.quality = quality.report(state, duplicates=job.duplicates, rows=job.rows_done)
        job.bytes_done = job.file_bytes if error is None else job.bytes_done
        if error is not None:
            _fail(job, error.code, error.message)
        else:
            job.status = ImportStatus.COMPLETED
            job.finished_at = timezone.now()
            _schedule_file_deletion(job)
            job.save()
        audit_record(
            actor=actor,
            action="ingest.import.finish",
            object_type="ingest.importjob",
            object_id=str(job.id),
            details={
                "status": job.status,
                "rows": job.rows_done,
                "created": job.created,
                "updated": job.updated,
                "duplicates": job.duplicates,
                "rejected": job.rejected,
                "error": job.error_code,
            },
        )


def import_jobs_resume(*, stale_seconds: int = 300) -> list[str]:
    """Re-enqueue jobs whose worker died: running without a heartbeat for `stale_seconds`, or
    queued for as long. Returns their ids. (A job's chunks are idempotent, so a job that was
    merely slow is not harmed: the second run stops at its first chunk.)"""
    cutoff = timezone.now() - dt.timedelta(seconds=stale_seconds)
    stale = list(
        ImportJob.objects.filter(status=ImportStatus.RUNNING, heartbeat_at__lt=cutoff).values_list(
            "id", flat=True
        )
    ) + list(
        ImportJob.objects.filter(status=ImportStatus.QUEUED, created_at__lt=cutoff).values_list(
            "id", flat=True
        )
    )
    from cdp.ingest.imports.tasks import import_job_run as task

    for job_id in stale:
        task.delay(str(job_id))
    return [str(j) for j in stale]


def row_errors_of(job: ImportJob) -> list[RowError]:
    return [
        RowError(e.row, e.column, e.code, e.reason)
        for e in ImportRowError.objects.filter(job=job).order_by("row", "id")
    ]
