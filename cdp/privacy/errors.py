"""Typed errors of the privacy package (rendered by the API's one error handler)."""

from __future__ import annotations

from cdp.api.errors import ApplicationError


class RequestStateError(ApplicationError):
    status = 409

    def __init__(self, message: str) -> None:
        super().__init__("privacy_request_state", message)


class SubjectInvalid(ApplicationError):
    def __init__(self, message: str = "the subject identifier is malformed") -> None:
        super().__init__("privacy_subject_invalid", message, fields={"subject": [message]})
