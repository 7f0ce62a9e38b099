"""Recompute the consent ledger's keyed hash chain; exit 1 naming the first broken entry."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from consent.ledger import ledger_verify
from consent.models import ConsentEvent


class Command(BaseCommand):
    help = (
        "Verify every link of the consent ledger with the key derived from CDP_AUDIT_KEY; "
        "exits non-zero and names the first broken entry when the chain is broken."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        def progress(checked: int) -> None:
            self.stderr.write(f"verified {checked:,} entries...")

        report = ledger_verify(progress=progress)
        if not report.ok:
            entry = ConsentEvent.objects.filter(seq=report.first_broken).values(
                "purpose_code", "at", "receipt_id"
            )
            found = entry.first() or {"purpose_code": "?", "at": "?", "receipt_id": "?"}
            raise CommandError(
                f"consent ledger BROKEN at seq {report.first_broken} "
                f"(purpose {found['purpose_code']}, at {found['at']}, "
                f"receipt {found['receipt_id']}): {report.reason}; {report.detail}. "
                f"{report.checked:,} entries verified before it."
            )
        self.stdout.write(f"{report.checked:,} entries checked; consent ledger OK")
