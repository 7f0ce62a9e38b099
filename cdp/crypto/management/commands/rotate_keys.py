"""Re-wrap every subject data key under the primary key-encryption key (the first in CDP_KEKS)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from cdp.crypto.subject_keys import subject_keys_rotate


class Command(BaseCommand):
    help = (
        "Re-wrap data keys under the primary KEK in committed batches. Safe to interrupt and "
        "rerun: only keys not yet under the primary are touched. Data is not re-encrypted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            rate = done / max(time.monotonic() - started, 1e-6)
            self.stderr.write(f"rotate_keys: {done:,}/{total:,} keys ({rate:,.0f}/s)")

        report = subject_keys_rotate(batch_size=batch_size, on_progress=progress)

        from cdp.audit.services import SYSTEM, audit_record

        with transaction.atomic():
            audit_record(
                actor=SYSTEM,
                action="crypto.rotate_keys",
                object_type="crypto.subjectkey",
                details={
                    "primary_kek": report.primary,
                    "rotated": report.rotated,
                    "already_current": report.already_current,
                    "failed": report.failed,
                },
            )
        self.stdout.write(
            f"rotate_keys: primary KEK {report.primary}: rotated {report.rotated:,}, "
            f"already current {report.already_current:,}, "
            f"failed {sum(report.failed.values()):,}"
        )
        if report.remaining_by_kek:
            remaining = ", ".join(f"{k}: {v:,}" for k, v in sorted(report.remaining_by_kek.items()))
            self.stdout.write(f"rotate_keys: still wrapped by older KEKs: {remaining}")
        if not report.ok:
            unknown = ", ".join(sorted(report.failed))
            raise CommandError(
                f"{sum(report.failed.values()):,} keys are wrapped by KEKs missing from CDP_KEKS "
                f"({unknown}); add those keys back and rerun"
            )
        self.stdout.write("rotate_keys: every data key is under the primary KEK")
