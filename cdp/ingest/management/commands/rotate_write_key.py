from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cdp.audit.services import SYSTEM
from cdp.ingest.models import Source
from cdp.ingest.services import source_rotate_key


class Command(BaseCommand):
    help = "Issue a new write key for a source; the old one stays valid for --grace-hours."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--grace-hours", type=float, default=24.0)

    def handle(self, *args: Any, **options: Any) -> None:
        source = Source.objects.filter(name=options["name"]).first()
        if source is None:
            raise CommandError(f"no source named {options['name']!r}")
        if options["grace_hours"] < 0:
            raise CommandError("--grace-hours cannot be negative")
        issued = source_rotate_key(
            source=source, actor=SYSTEM, grace=dt.timedelta(hours=options["grace_hours"])
        )
        self.stdout.write(f"new write key: {issued.write_key}")
        until = issued.source.previous_key_valid_until
        self.stdout.write(
            f"old key valid until {until.isoformat()}" if until else "old key invalid now"
        )
