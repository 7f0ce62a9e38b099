"""The Segment Tracking API: `POST /v1/identify|track|page|screen|group|alias|batch`.

What the real clients need (issue "Tracking API"): success is exactly 200 with a JSON body;
every error is a JSON object with top-level `code` and `message` (without `code` the Python
SDKs raise inside their error handling and retry forever); a batch with some bad messages is a
200 that counts and explains them, because a 4xx makes the clients drop the whole batch. The
write key comes by HTTP Basic (user name, empty password), in the body as `writeKey`, or in the
body next to a Bearer token.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from cdp.ingest import openapi
from cdp.ingest.messages import (
    Limits,
    Message,
    Rejection,
    RequestError,
    batch_messages,
    body_screen,
    decompress,
    message_validate,
    parse_json,
    parse_time,
)
from cdp.ingest.models import Source
from cdp.ingest.pipeline import events_ingest
from cdp.ingest.ratelimit import rate_limit_take
from cdp.ingest.selectors import source_for_write_key
from cdp.memory import collector_paused

logger = logging.getLogger(__name__)

# Hard caps before the source is known (its own limits apply after authentication).
HARD_MAX_BODY_BYTES = getattr(settings, "CDP_INGEST_MAX_BODY_BYTES", 16 * 1024 * 1024)


def error(status: int, code: str, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"code": code, "message": message}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def _header_credentials(request: HttpRequest) -> tuple[str | None, str | None]:
    """(scheme, write key from the header) — the key only for Basic."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return None, None
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise RequestError(
                401, "invalid_credentials", "Basic credentials are malformed"
            ) from None
        return scheme, decoded.partition(":")[0]
    if scheme == "bearer":
        return scheme, None
    raise RequestError(401, "invalid_credentials", "use HTTP Basic or a writeKey in the body")


def _authenticate(request: HttpRequest, body: Any) -> Source:
    scheme, key = _header_credentials(request)
    body_key = body.get("writeKey") if isinstance(body, dict) else None
    if not key:
        key = body_key if isinstance(body_key, str) else None
    if scheme == "bearer" and not key:
        token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")[2].strip()
        key = token or None
    if not key:
        raise RequestError(401, "missing_write_key", "no write key: use HTTP Basic or writeKey")
    source = source_for_write_key(key)
    if source is None:
        raise RequestError(401, "invalid_write_key", "the write key is not valid")
    if source.revoked_at is not None:
        raise RequestError(403, "source_revoked", "this source has been revoked")
    if not source.enabled:
        raise RequestError(403, "source_disabled", "this source is disabled")
    return source


class _FirstRenderer(BaseContentNegotiation):
    """Always JSON: Segment clients send any Accept header, and must never get a 406."""

    def select_parser(self, request: Any, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Any, renderers: Any, format_suffix: Any = None) -> Any:
        return renderers[0], renderers[0].media_type


class TrackingView(APIView):
    """One endpoint of the tracking API; `message_type` is None for /v1/batch."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _FirstRenderer
    throttle_classes: list[Any] = []
    message_type: str | None = None

    def handle_exception(self, exc: Exception) -> JsonResponse:  # type: ignore[override]
        if isinstance(exc, RequestError):
            return error(exc.status, exc.code, exc.message)
        if isinstance(exc, DatabaseError):
            logger.exception("tracking API: database error")
            return error(
                503,
                "unavailable",
                "temporarily unable to store events; retry",
                **{"Retry-After": "5"},
            )
        logger.exception("tracking API: unexpected error")
        return error(500, "internal_error", "internal error; the batch was not stored, retry")

    def post(self, request: Any) -> JsonResponse:
        django_request: HttpRequest = request._request
        received_at = timezone.now()
        raw = django_request.read(HARD_MAX_BODY_BYTES + 1)
        if len(raw) > HARD_MAX_BODY_BYTES:
            raise RequestError(413, "request_too_large", "request body is too large")
        data = decompress(
            raw, django_request.META.get("HTTP_CONTENT_ENCODING", ""), HARD_MAX_BODY_BYTES
        )
        body, text = parse_json(data)
        source = _authenticate(django_request, body)
        if len(data) > source.max_request_bytes:
            raise RequestError(
                413,
                "request_too_large",
                f"request body is {len(data)} bytes; the limit is {source.max_request_bytes}",
            )
        if self.message_type is not None and isinstance(body, dict):
            body = {k: v for k, v in body.items() if k != "writeKey"}
        items, top_sent_at = batch_messages(body, self.message_type)
        if len(items) > source.max_batch_messages:
            raise RequestError(
                413,
                "batch_too_large",
                f"batch holds {len(items)} messages; the limit is {source.max_batch_messages}",
            )
        try:
            batch_sent_at = parse_time(top_sent_at, "sentAt")
        except ValueError as exc:
            raise RequestError(400, "invalid_field", str(exc)) from None
        limits = Limits(
            max_message_bytes=source.max_message_bytes,
            max_depth=source.max_depth,
            max_event_age=dt.timedelta(days=source.max_event_age_days),
        )
        limits = body_screen(text, limits)
        messages: list[Message] = []
        rejections: list[Rejection] = []
        for index, item in enumerate(items):
            checked = message_validate(
                item,
                index=index,
                endpoint_type=self.message_type,
                batch_sent_at=batch_sent_at,
                received_at=received_at,
                limits=limits,
            )
            (messages if isinstance(checked, Message) else rejections).append(checked)
        if not messages:
            first = rejections[0]
            return JsonResponse(
                {
                    "code": "no_valid_messages" if len(rejections) > 1 else first.code,
                    "message": (
                        f"none of the {len(rejections)} messages is valid"
                        if len(rejections) > 1
                        else first.reason
                    ),
                    "errors": [r.as_dict() for r in rejections],
                },
                status=400,
            )
        retry_after = rate_limit_take(source, len(messages), now=received_at)
        if retry_after is not None:
            return error(
                429,
                "rate_limited",
                "this source is over its message rate; retry later",
                **{"Retry-After": str(retry_after)},
            )
        result = events_ingest(
            source=source,
            messages=messages,
            rejections=rejections,
            received_at=received_at,
            gpc=django_request.META.get("HTTP_SEC_GPC", "").strip() == "1",
            user_agent=django_request.META.get("HTTP_USER_AGENT"),
        )
        if result.rejected and not (result.accepted or result.duplicate or result.suppressed):
            body = result.body()
            return JsonResponse(
                {
                    "code": "no_valid_messages",
                    "message": f"none of the {len(result.rejected)} messages is valid",
                    "errors": body["errors"],
                },
                status=400,
            )
        return JsonResponse(result.body(), status=200)


def tracking_view(message_type: str | None, *, name: str | None = None) -> Any:
    """A view class per endpoint, each with its own OpenAPI operation."""
    name = name or message_type or "batch"

    def post(self: TrackingView, request: Any) -> JsonResponse:
        with collector_paused():
            return TrackingView.post(self, request)

    view_class = type(
        f"{name.title()}TrackingView",
        (TrackingView,),
        {
            "message_type": message_type,
            "post": extend_schema(**openapi.operation(message_type, name))(post),
        },
    )
    return view_class.as_view()
