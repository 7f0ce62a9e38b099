"""Compute every allowed customer's features now, in this process (cron, or after an import)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from segmentation.services import features_compute


class Command(BaseCommand):
    help = "Compute segmentation features for customers allowed for profiling."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--as-of",
            help="Reference time (ISO 8601, e.g. 2011-12-10) for recency and windows; default now.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = None
        if options["as_of"]:
            try:
                as_of = dt.datetime.fromisoformat(options["as_of"])
            except ValueError as exc:
                raise CommandError("--as-of must be an ISO 8601 date or time") from exc
            if as_of.tzinfo is None:
                as_of = as_of.replace(tzinfo=dt.UTC)
        run = features_compute(actor="system:command", as_of=as_of)
        self.stdout.write(f"feature run {run.pk}: {run.customers} customers, {run.removed} removed")
