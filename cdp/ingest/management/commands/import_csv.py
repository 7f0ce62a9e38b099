"""`manage.py import_csv FILE --source NAME --kind profiles|transactions [--mapping JSON|FILE]`.

Runs the same import as the admin and the API, in this process (no worker needed), with a
progress bar on stderr; `--async` queues it for the workers instead and prints the job id.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cdp.api.errors import ApplicationError
from cdp.ingest.imports.selectors import import_job_counts, import_job_progress
from cdp.ingest.imports.services import (
    import_job_create,
    import_job_run,
    import_source_get_or_create,
)
from cdp.ingest.models import ImportJob, ImportKind, ImportStatus

ACTOR = "command:import_csv"


class Command(BaseCommand):
    help = "Import a CSV file of customer profiles or transactions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--source", required=True, help="Source name (created if new)")
        parser.add_argument("--kind", required=True, choices=ImportKind.values)
        parser.add_argument("--mapping", help="JSON {header: target} or a JSON file")
        parser.add_argument("--default-region", default="", help="e.g. GB, for national phones")
        parser.add_argument("--day-first", action="store_true", help="04/09/2012 is 4 Sept")
        parser.add_argument("--currency", default="", help="ISO 4217 when the file has none")
        parser.add_argument("--rules", default="", help="e.g. customer_id,email,phone,content")
        parser.add_argument("--async", dest="queue", action="store_true", help="Queue for workers")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path} is not a file")
        mapping = None
        if options["mapping"]:
            text = options["mapping"]
            if not text.lstrip().startswith("{"):
                text = Path(text).read_text()
            try:
                mapping = json.loads(text)
            except ValueError as exc:
                raise CommandError(f"--mapping is not JSON: {exc}") from None
        import_options = {
            "default_region": options["default_region"],
            "day_first": options["day_first"],
            "currency": options["currency"],
            "rules": options["rules"] or None,
        }
        try:
            source = import_source_get_or_create(name=options["source"], actor=ACTOR)
            with path.open("rb") as handle:
                job = import_job_create(
                    source=source,
                    kind=options["kind"],
                    file=handle,
                    file_name=path.name,
                    actor=ACTOR,
                    mapping=mapping,
                    options=import_options,
                    start=options["queue"],
                )
        except ApplicationError as exc:
            detail = "".join(f"\n  {k}: {v}" for k, v in exc.fields.items())
            raise CommandError(f"{exc.code}: {exc.message}{detail}") from None
        if job.status == ImportStatus.FAILED:
            raise CommandError(f"{job.error_code}: {job.error_message} (job {job.id})")
        if options["queue"]:
            self.stdout.write(f"Queued import job {job.id}")
            return
        if job.status == ImportStatus.MAPPING:
            from cdp.ingest.imports.mapping import validate_mapping
            from cdp.ingest.imports.services import purposes_known

            try:
                job.mapping = validate_mapping(job.mapping, job.headers, job.kind, purposes_known())
            except ApplicationError as exc:
                detail = "".join(f"\n  {k}: {v}" for k, v in exc.fields.items())
                raise CommandError(f"{exc.message}; pass --mapping{detail}") from None
            ImportJob.objects.filter(pk=job.pk).update(
                mapping=job.mapping, status=ImportStatus.QUEUED
            )
        self.stderr.write(f"Import job {job.id}: mapping {json.dumps(job.mapping)}")
        stop = threading.Event()
        bar = None
        if not options["no_progress"]:
            bar = threading.Thread(target=self._progress, args=(job.pk, stop), daemon=True)
            bar.start()
        try:
            status = "continue"
            while status == "continue":
                status = import_job_run(job_id=job.pk, actor=ACTOR)
        finally:
            stop.set()
            if bar is not None:
                bar.join()
        job.refresh_from_db()
        counts = import_job_counts(job)
        self.stdout.write(json.dumps({"job": str(job.id), "status": job.status, **counts}))
        if job.status == ImportStatus.FAILED:
            raise CommandError(f"{job.error_code}: {job.error_message}")

    def _progress(self, job_id: Any, stop: threading.Event) -> None:
        from django.db import connection

        try:
            while not stop.wait(0.5):
                self._draw(ImportJob.objects.get(pk=job_id))
            self._draw(ImportJob.objects.get(pk=job_id))
            sys.stderr.write("\n")
        finally:
            connection.close()

    def _draw(self, job: ImportJob) -> None:
        p = import_job_progress(job)
        width = 30
        filled = int(width * p["fraction"])
        left = "" if p["seconds_left"] is None else f", {p['seconds_left']:.0f}s left"
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {p['fraction'] * 100:5.1f}% "
            f"{p['rows_done']:,} rows, {p['rows_per_second']:,.0f} rows/s{left}   "
        )
        sys.stderr.flush()
        time.sleep(0)
