"""Issuing and revoking API tokens."""

from __future__ import annotations

import datetime
import secrets
from typing import Any

from django.db import transaction
from django.utils import timezone

from cdp.api.errors import ApplicationError
from cdp.api.models import ApiToken, token_hash
from cdp.api.scopes import SCOPES
from cdp.audit.services import audit_record

TOKEN_PREFIX = "cdp"  # noqa: S105 (a label, not a secret)


def api_token_create(
    *, name: str, scopes: list[str], actor: str, days: int = 90, created_by: Any = None
) -> tuple[ApiToken, str]:
    """Create a token; the plaintext is returned once and never stored."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ApplicationError(
            "api_scope_unknown",
            f"unknown scopes: {', '.join(unknown)}; known: {', '.join(sorted(SCOPES))}",
        )
    if not 1 <= days <= 366:
        raise ApplicationError("api_token_lifetime", "a token lives from 1 to 366 days")
    prefix = secrets.token_hex(4)
    token = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        api_token = ApiToken.objects.create(
            name=name,
            prefix=prefix,
            token_hash=token_hash(token),
            scopes=sorted(set(scopes)),
            created_by=created_by,
            expires_at=timezone.now() + datetime.timedelta(days=days),
        )
        audit_record(
            actor=actor,
            action="api.token_create",
            object_type="api.apitoken",
            object_id=str(api_token.id),
            details={"prefix": prefix, "scopes": api_token.scopes, "days": days},
        )
    return api_token, token


def api_token_revoke(*, api_token: ApiToken, actor: str) -> None:
    with transaction.atomic():
        if api_token.revoked_at is None:
            api_token.revoked_at = timezone.now()
            api_token.save(update_fields=["revoked_at"])
        audit_record(
            actor=actor,
            action="api.token_revoke",
            object_type="api.apitoken",
            object_id=str(api_token.id),
            details={"prefix": api_token.prefix},
        )
