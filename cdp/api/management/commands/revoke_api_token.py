from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cdp.api.models import ApiToken
from cdp.api.services import api_token_revoke
from cdp.audit.services import SYSTEM


class Command(BaseCommand):
    help = "Revoke an API token by its prefix (the 8 characters after 'cdp_')."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefix")

    def handle(self, *args: Any, prefix: str, **options: Any) -> None:
        api_token = ApiToken.objects.filter(prefix=prefix).first()
        if api_token is None:
            raise CommandError(f"no API token with prefix {prefix!r}")
        api_token_revoke(api_token=api_token, actor=f"{SYSTEM}:revoke_api_token")
        self.stdout.write(f"revoked {api_token}")
