from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from cdp.audit.services import SYSTEM
from cdp.ingest.models import SourceKind
from cdp.ingest.services import source_create


class Command(BaseCommand):
    help = "Create a tracking source and print its write key (shown this once only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--kind", choices=SourceKind.values, default=SourceKind.SERVER)

    def handle(self, *args: Any, **options: Any) -> None:
        issued = source_create(name=options["name"], kind=options["kind"], actor=SYSTEM)
        self.stdout.write(f"source {issued.source.id} ({issued.source.name})")
        self.stdout.write(f"write key: {issued.write_key}")
        self.stdout.write("Store it now: it is kept only as a hash and cannot be shown again.")
