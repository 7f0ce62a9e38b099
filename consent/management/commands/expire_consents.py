"""Record the expiry of every consent grant whose time has passed (also run by Celery beat)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from consent.services import consent_expire_due


class Command(BaseCommand):
    help = "Write an expiry into the consent ledger for each grant past its expires_at."

    def handle(self, *args: Any, **options: Any) -> None:
        count = consent_expire_due()
        self.stdout.write(f"{count:,} expired grants recorded")
