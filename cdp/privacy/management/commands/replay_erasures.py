"""Re-apply journalled erasures, e.g. after restoring a backup taken before some of them.

manage.py replay_erasures                 # from the journal table
manage.py replay_erasures --file j.json   # from an exported journal (the restored database
                                          # may predate the erasures and so lack them)
manage.py replay_erasures --export j.json # write the journal out, to keep off-database
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from cdp.privacy.erasure import erasure_journal_export, erasures_replay


class Command(BaseCommand):
    help = "Re-apply erasures from the erasure journal (after a database restore)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", type=Path, help="Replay a journal exported with --export")
        parser.add_argument("--export", type=Path, help="Write the journal to this JSON file")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["export"]:
            entries = erasure_journal_export()
            options["export"].write_text(json.dumps(entries, indent=1))
            self.stdout.write(f"exported {len(entries)} journal entries")
            return
        entries = None
        if options["file"]:
            entries = json.loads(options["file"].read_text())
        report = erasures_replay(entries=entries)
        self.stdout.write(
            f"replayed {report.entries} entries: {report.customers_erased} customers erased, "
            f"{report.rows_deleted} rows deleted, {report.suppressions} suppressions restored"
        )
