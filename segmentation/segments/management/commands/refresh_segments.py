"""Refresh segments now: by name or id, every enabled one, or the due ones (what beat does)."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from segmentation.segments.models import Segment
from segmentation.segments.services import segment_refresh


class Command(BaseCommand):
    help = "Full refresh of segments (diff only), printing added/removed/size per segment."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("segments", nargs="*", help="segment names or ids")
        parser.add_argument("--all", action="store_true", help="every enabled segment")
        parser.add_argument("--due", action="store_true", help="only those whose time has come")

    def handle(self, *args: Any, **options: Any) -> None:
        from segmentation.segments.selectors import segments_due

        if options["due"]:
            chosen = list(segments_due())
        elif options["all"]:
            chosen = list(Segment.objects.filter(enabled=True))
        elif options["segments"]:
            chosen = []
            for key in options["segments"]:
                try:
                    found = Segment.objects.filter(pk=uuid.UUID(key)).first()
                except ValueError:
                    found = Segment.objects.filter(name=key).first()
                if found is None:
                    raise CommandError(f"no segment {key!r}")
                chosen.append(found)
        else:
            raise CommandError("name segments, or pass --all or --due")
        for segment in chosen:
            refresh = segment_refresh(segment_id=segment.pk, actor="command", trigger="command")
            if refresh is None:
                self.stdout.write(f"{segment}: disabled")
            elif refresh.status == "failed":
                self.stderr.write(f"{segment}: failed: {refresh.error}")
            else:
                self.stdout.write(
                    f"{segment}: +{refresh.added} -{refresh.removed} = {refresh.size} "
                    f"({refresh.duration_ms} ms)"
                )
