from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cdp.api.errors import ApplicationError
from cdp.api.scopes import SCOPES
from cdp.api.services import api_token_create
from cdp.audit.services import SYSTEM


class Command(BaseCommand):
    help = "Create a scoped, expiring API token for a partner system; the token is printed once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--scopes", required=True, help="comma-separated: " + ", ".join(sorted(SCOPES))
        )
        parser.add_argument("--days", type=int, default=90, help="lifetime (1-366, default 90)")

    def handle(self, *args: Any, name: str, scopes: str, days: int, **options: Any) -> None:
        wanted = [s.strip() for s in scopes.split(",") if s.strip()]
        try:
            api_token, token = api_token_create(
                name=name, scopes=wanted, days=days, actor=f"{SYSTEM}:create_api_token"
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(
            f"token {api_token.prefix} for {name!r}, scopes {','.join(api_token.scopes)}, "
            f"expires {api_token.expires_at:%Y-%m-%d}. It is shown once; store it now."
        )
        self.stdout.write(token)
