"""Typed consent errors; the API renders them as `{"error": {"code", "message", "fields"}}`.

Messages name purposes and row numbers, never personal data.
"""

from __future__ import annotations

from cdp.api.errors import ApplicationError


class ConsentError(ApplicationError):
    """Base class of every expected consent failure."""


class PurposeUnknown(ConsentError):
    def __init__(self, code: str) -> None:
        super().__init__(
            "consent_purpose_unknown",
            f"no active purpose has the code {code!r}",
            status=400,
            fields={"purpose": ["unknown purpose"]},
        )


class NoticeVersionUnknown(ConsentError):
    def __init__(self, code: str, version: int) -> None:
        super().__init__(
            "consent_notice_version_unknown",
            f"purpose {code!r} has no notice version {version}",
            status=400,
            fields={"notice_version": ["unknown version for this purpose"]},
        )


class CustomerUnknown(ConsentError):
    def __init__(self) -> None:
        super().__init__(
            "consent_customer_unknown", "no customer matches the identifier", status=404
        )


class CustomerInactive(ConsentError):
    def __init__(self, status: str) -> None:
        super().__init__(
            "consent_customer_inactive",
            f"the customer is {status}; consent cannot be recorded for them",
            status=409,
        )


class InvalidDecision(ConsentError):
    def __init__(self, message: str, *, field: str) -> None:
        super().__init__("consent_invalid", message, status=400, fields={field: [message]})
