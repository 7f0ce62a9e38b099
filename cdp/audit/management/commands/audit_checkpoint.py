"""Print the signed head of the audit log, for an operator to store outside the database."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from cdp.audit.selectors import audit_checkpoint


class Command(BaseCommand):
    help = (
        'Print {"seq", "hash", "at", "signature"} for the newest audit entry. Keep the output '
        "somewhere the database's writers cannot reach; `verify_audit_log --checkpoint FILE` "
        "later proves the log still contains that entry unchanged."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(json.dumps(audit_checkpoint(), sort_keys=True))
