"""Recompute the audit log's keyed hash chain; exit 1 naming the first broken entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cdp.audit.models import AuditEntry
from cdp.audit.selectors import AuditCheckpointError, audit_chain_verify, audit_checkpoint_check


class Command(BaseCommand):
    help = (
        "Verify every link of the audit log with CDP_AUDIT_KEY. With --checkpoint, also check "
        "that the entry a signed checkpoint names still has its hash (detects a cut-off tail)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--checkpoint",
            type=Path,
            help="a JSON file written earlier by `manage.py audit_checkpoint`",
        )

    def handle(self, *args: Any, checkpoint: Path | None = None, **options: Any) -> None:
        checkpoint_data = self._load_checkpoint(checkpoint) if checkpoint else None

        def progress(checked: int) -> None:
            self.stderr.write(f"verified {checked:,} entries...")

        report = audit_chain_verify(progress=progress)
        if not report.ok:
            entry = AuditEntry.objects.filter(seq=report.first_broken).values("action", "at")
            found = entry.first() or {"action": "?", "at": "?"}
            raise CommandError(
                f"audit log BROKEN at seq {report.first_broken} "
                f"(action {found['action']}, at {found['at']}): {report.reason}; "
                f"{report.detail}. {report.checked:,} entries verified before it."
            )
        if checkpoint_data is not None:
            try:
                audit_checkpoint_check(checkpoint_data)
            except AuditCheckpointError as exc:
                raise CommandError(f"audit log does not match checkpoint: {exc}") from None
            self.stdout.write(f"checkpoint at seq {checkpoint_data['seq']} matches")
        self.stdout.write(f"{report.checked:,} entries checked; audit log OK")

    def _load_checkpoint(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read checkpoint {path}: {exc}") from None
        if not isinstance(data, dict):
            raise CommandError(f"checkpoint {path} must hold a JSON object")
        return data
