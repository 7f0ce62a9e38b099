"""Run the deferred residue sweep now (beat runs it every 15 minutes).

manage.py residue_sweep            # every erasure left to a sweep (up to --limit)
manage.py residue_sweep --limit 100
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from cdp.privacy.sweep import DEFAULT_LIMIT, residue_sweep_run


class Command(BaseCommand):
    help = "Search the columns erasures left to the residue sweep, for all of them at once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--limit", type=int, default=DEFAULT_LIMIT, help="Most erasures to cover in one sweep"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        sweep = residue_sweep_run(actor="command:residue_sweep", limit=options["limit"])
        if sweep is None:
            self.stdout.write("nothing to sweep (or another sweep is running)")
            return
        outcome = "clean" if sweep.clean else f"RESIDUE in {len(sweep.residue)} column(s)"
        self.stdout.write(
            f"sweep {sweep.id}: {len(sweep.covered)} erasures, {sweep.tables_scanned} tables, "
            f"{sweep.columns_scanned} columns, {outcome}"
        )
