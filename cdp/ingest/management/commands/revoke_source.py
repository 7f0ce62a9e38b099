from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cdp.audit.services import SYSTEM
from cdp.ingest.models import Source
from cdp.ingest.services import source_revoke


class Command(BaseCommand):
    help = "Revoke a source for good: every call with its keys gets 403."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        source = Source.objects.filter(name=options["name"]).first()
        if source is None:
            raise CommandError(f"no source named {options['name']!r}")
        source_revoke(source=source, actor=SYSTEM)
        self.stdout.write(f"source {source.id} revoked")
