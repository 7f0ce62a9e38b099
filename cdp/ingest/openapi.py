"""OpenAPI descriptions of the tracking endpoints (served in /api/schema/ with the REST API)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse

AUTH = (
    "Authenticate with the source's write key, in one of the three forms of the Segment docs: "
    "HTTP Basic with the write key as user name and an empty password; `writeKey` in the JSON "
    "body and no Authorization header; or `Authorization: Bearer ...` with `writeKey` in the body. "
    "The body may be gzip-encoded (`Content-Encoding: gzip`). `Sec-GPC: 1` opts the customers of "
    "the request out of sale/sharing."
)

_ID = {"type": "string", "nullable": True, "maxLength": 255}
_TIME = {"type": "string", "nullable": True, "format": "date-time"}
_OBJ = {"type": "object", "nullable": True, "additionalProperties": True}

MESSAGE_FIELDS: dict[str, Any] = {
    "messageId": {"type": "string", "minLength": 1, "maxLength": 255},
    "userId": _ID,
    "anonymousId": _ID,
    "timestamp": _TIME,
    "originalTimestamp": _TIME,
    "sentAt": _TIME,
    "context": _OBJ,
    "integrations": _OBJ,
    "traits": _OBJ,
    "properties": _OBJ,
    "event": {"type": "string", "maxLength": 255},
    "name": {"type": "string", "nullable": True, "maxLength": 255},
    "previousId": _ID,
    "groupId": _ID,
    "writeKey": {"type": "string"},
}


def message_schema(message_type: str | None) -> dict[str, Any]:
    types = (
        [message_type]
        if message_type
        else [
            "identify",
            "track",
            "page",
            "screen",
            "group",
            "alias",
        ]
    )
    required = ["messageId"] + (["type"] if message_type is None else [])
    if message_type == "track":
        required.append("event")
    return {
        "type": "object",
        "required": required,
        "properties": {"type": {"type": "string", "enum": types}, **MESSAGE_FIELDS},
        "additionalProperties": True,
    }


def _request_schema(message_type: str | None) -> dict[str, Any]:
    if message_type is not None:
        return message_schema(message_type)
    return {
        "type": "object",
        "required": ["batch"],
        "properties": {
            "batch": {"type": "array", "minItems": 1, "items": message_schema(None)},
            "sentAt": _TIME,
            "writeKey": {"type": "string"},
            "context": _OBJ,
        },
    }


SUCCESS = {
    "type": "object",
    "required": ["success", "received", "accepted", "duplicate", "rejected", "suppressed"],
    "properties": {
        "success": {"type": "boolean"},
        "received": {"type": "integer"},
        "accepted": {"type": "integer"},
        "duplicate": {"type": "integer"},
        "rejected": {"type": "integer"},
        "suppressed": {"type": "integer"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "code": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
        },
        "clamped": {"type": "array", "items": {"type": "integer"}},
    },
}
ERROR = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}

_EXAMPLE_TRACK = {
    "type": "track",
    "messageId": "9a3f0c1e-2b7d-4a55-9e0f-6f1d2c3b4a5e",
    "userId": "u-1001",
    "anonymousId": None,
    "event": "Order Completed",
    "properties": {"order_id": "o-77", "total": 59.9, "currency": "EUR"},
    "context": {"consent": {"categoryPreferences": {"analytics": True}}},
    "timestamp": "2026-11-23T10:00:00+00:00",
}


def operation(message_type: str | None, name: str) -> dict[str, Any]:
    example = (
        {"batch": [_EXAMPLE_TRACK], "sentAt": "2026-11-23T10:00:01+00:00"}
        if message_type is None
        else {**_EXAMPLE_TRACK, "type": message_type}
    )
    return {
        "operation_id": f"tracking_{name}",
        "tags": ["tracking"],
        "summary": f"Segment Tracking API: {name}",
        "description": AUTH,
        "auth": [],
        "request": {"application/json": _request_schema(message_type)},
        "responses": {
            200: OpenApiResponse(SUCCESS, description="Every accepted message is committed."),
            400: OpenApiResponse(ERROR, description="Nothing in the request was acceptable."),
            401: OpenApiResponse(ERROR, description="Missing or unknown write key."),
            403: OpenApiResponse(ERROR, description="The source is disabled or revoked."),
            413: OpenApiResponse(ERROR, description="Body or batch over the source's limits."),
            415: OpenApiResponse(ERROR, description="Unsupported Content-Encoding."),
            429: OpenApiResponse(ERROR, description="Over the source's rate; see Retry-After."),
        },
        "examples": [OpenApiExample(f"{name} example", value=example, request_only=True)],
    }
