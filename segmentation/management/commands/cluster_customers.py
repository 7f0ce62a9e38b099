"""Run a clustering over the current features, in this process or queued for a worker."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cdp.api.errors import ApplicationError
from segmentation.services import clustering_run_create, clustering_run_execute


class Command(BaseCommand):
    help = "Cluster the customers' features and store the run, assignments and personas."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--algorithm", default="kmeans")
        parser.add_argument("--params", default="{}", help='JSON, e.g. {"k_min": 2, "k_max": 8}')
        parser.add_argument("--features", default="", help="Comma-separated; default set if empty")
        parser.add_argument("--name", default="")
        parser.add_argument("--queue", action="store_true", help="Queue for a worker instead")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            params = json.loads(options["params"])
        except ValueError as exc:
            raise CommandError("--params must be JSON") from exc
        features = [f.strip() for f in options["features"].split(",") if f.strip()]
        try:
            run = clustering_run_create(
                actor="system:command",
                algorithm=options["algorithm"],
                params=params,
                features=features,
                name=options["name"],
                trigger="command",
                enqueue=options["queue"],
            )
            if not options["queue"]:
                run = clustering_run_execute(run_id=run.pk) or run
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"clustering run {run.pk}: {run.status}, {run.population} customers, k={run.k}"
        )
