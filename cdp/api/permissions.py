"""Scope checks: tokens by scope, staff sessions by the matching Django permission."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from cdp.api.models import ApiToken
from cdp.api.scopes import SCOPES


def HasScope(scope: str, *, perm: str | None = None) -> type[BasePermission]:
    """Permission class factory: a token needs `scope`; a logged-in user needs `perm`."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; add it to cdp.api.scopes.SCOPES")

    class _HasScope(BasePermission):
        message = f"this call needs the {scope!r} scope"
        required_scope = scope

        def has_permission(self, request: Request, view: Any) -> bool:
            if isinstance(request.auth, ApiToken):
                return scope in request.auth.scopes
            user = request.user
            return bool(user and user.is_authenticated and perm and user.has_perm(perm))

    _HasScope.__name__ = f"HasScope[{scope}]"
    return _HasScope
