"""One error shape for the REST API: `{"error": {"code", "message", "fields"}}`.

Services raise ApplicationError (or a subclass) with a stable code; `cdp.api.handlers` turns it,
and DRF's own exceptions, into that shape. Messages never carry personal data. This module
imports nothing from DRF, so services can raise these errors without loading the API layer.
"""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A typed, expected failure of a use case, with a code clients can branch on."""

    status = 400

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        fields: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or {}
        if status is not None:
            self.status = status


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}
