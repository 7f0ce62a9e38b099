"""Bearer-token authentication for partner systems."""

from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass
from typing import Any

from django.db import router
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from cdp.api.models import ApiToken, token_hash
from cdp.api.prepared import prepared_fetchone

LAST_USED_GRANULARITY = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class ApiClient:
    """The principal of a token-authenticated request (not a Django user)."""

    token: ApiToken
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_staff: bool = False
    is_superuser: bool = False

    @property
    def pk(self) -> str:
        return f"token:{self.token.prefix}"

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False

    def __str__(self) -> str:
        return f"API client {self.token.name}"


@functools.cache
def _lookup_sql() -> tuple[list[str], str]:
    fields = [f.attname for f in ApiToken._meta.concrete_fields]
    columns = ", ".join(f'"{f.column}"' for f in ApiToken._meta.concrete_fields)
    table = ApiToken._meta.db_table
    return fields, f'SELECT {columns} FROM "{table}" WHERE "token_hash" = %s'  # noqa: S608


def token_lookup(digest: bytes) -> ApiToken | None:
    """The token with this hash, read from the database on every call (revocation and expiry
    take effect at once). One fixed, prepared statement on the unique index: building the same
    SELECT through the QuerySet API cost more CPU than the lookup itself, on every API request."""
    fields, sql = _lookup_sql()
    using = router.db_for_read(ApiToken)
    row = prepared_fetchone(using, "api_token", sql, [digest])
    return None if row is None else ApiToken.from_db(using, fields, row)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiClient, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization must be 'Bearer <token>'")
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("the token is not ASCII") from None
        api_token = token_lookup(token_hash(token))
        if api_token is None:
            raise exceptions.AuthenticationFailed("unknown token")
        if api_token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("the token was revoked")
        now = timezone.now()
        if api_token.expires_at <= now:
            raise exceptions.AuthenticationFailed("the token has expired")
        if api_token.last_used_at is None or now - api_token.last_used_at > LAST_USED_GRANULARITY:
            ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
        return ApiClient(api_token), api_token

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'
