"""Decoding and validating Segment tracking messages (no database access).

The request is decoded once (gzip with a cap, strict UTF-8, JSON without NaN or infinities);
each message is then checked on its own, so one bad message is rejected with a reason while
the others in its batch are kept. Reasons name fields, never values: they are returned to the
client and may be logged.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

SEGMENT_TYPES = ("identify", "track", "page", "screen", "group", "alias")
MAX_ID_LENGTH = 255
MAX_NAME_LENGTH = 255
CLAMP_AFTER = dt.timedelta(days=1)
# NUL cannot be stored in PostgreSQL text or jsonb; json.dumps writes it as \u0000.
_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
# orjson reads integers past 64 bits as floats; a body with such a run of digits (anywhere,
# strings included) is left to the standard library, which keeps them exact. Found with a
# byte translation (digits to "0", the rest to " ") and a substring search: a regex is slower
# than the whole parse.
_DIGITS_ONLY = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_LONG_DIGITS = b"0" * 19


class RequestError(Exception):
    """The whole request is unacceptable: answered with `status` and a Segment error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Rejection:
    index: int
    code: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "code": self.code, "reason": self.reason}


@dataclass
class Message:
    """A valid message, with the fields the pipeline needs pulled out of it."""

    index: int
    raw: dict[str, Any]
    type: str
    message_id: str
    user_id: str | None
    anonymous_id: str | None
    name: str
    timestamp: dt.datetime
    original_timestamp: dt.datetime | None
    sent_at: dt.datetime | None
    clamped: bool
    traits: dict[str, Any]
    properties: dict[str, Any]
    context: dict[str, Any]
    previous_id: str | None = None
    group_id: str | None = None
    customer_id: Any = field(default=None)


def decompress(data: bytes, encoding: str, limit: int) -> bytes:
    """Undo `Content-Encoding`; a body that inflates past `limit` is refused (gzip bomb)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(data) > limit:
            raise RequestError(413, "request_too_large", f"request body is over {limit} bytes")
        return data
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise RequestError(415, "unsupported_encoding", "Content-Encoding must be gzip or none")
    wbits = 16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise RequestError(400, "bad_gzip", "request body is not valid gzip data") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise RequestError(413, "request_too_large", f"request body inflates to over {limit} bytes")
    if not inflater.eof:
        raise RequestError(400, "bad_gzip", "gzip data is truncated")
    return out


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(data: bytes) -> tuple[Any, str]:
    """Strict UTF-8 JSON (the value and the decoded text); NaN, Infinity and numbers that
    overflow a double are refused."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(400, "invalid_utf8", "request body is not valid UTF-8") from None
    if not text.strip():
        raise RequestError(400, "empty_body", "request body is empty")
    if _LONG_DIGITS not in data.translate(_DIGITS_ONLY):
        # orjson (several times faster) accepts a subset of what the standard library parses
        # here: whatever it refuses (NaN, an overflowing number, an unpaired surrogate escape,
        # nesting past its limit, any syntax error) goes to the standard library below, which
        # decides, so the answers are the same.
        try:
            return orjson.loads(data), text
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(text, parse_float=_finite_float, parse_constant=_no_constant), text
    except RecursionError:
        raise RequestError(400, "too_deep", "request body is nested too deeply") from None
    except ValueError as exc:
        # json's messages give a position, never content.
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise RequestError(
            400, "invalid_json", f"request body is not valid JSON: {detail}"
        ) from None


def parse_time(value: Any, name: str) -> dt.datetime | None:
    """An ISO 8601 string (naive means UTC); None when absent. ValueError names the field."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an ISO 8601 string")
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{name} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def _identifier(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{name} must be a string")
    text = str(value).strip()
    if len(text) > MAX_ID_LENGTH:
        raise ValueError(f"{name} is longer than {MAX_ID_LENGTH} characters")
    return text or None


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object")
    return value


def depth_of(value: Any, limit: int) -> int:
    """The nesting depth of `value`, stopping early once it passes `limit` (iterative)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, dict | list))
    return deepest


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int
    max_depth: int
    max_event_age: dt.timedelta
    # Set by `body_screen`: False when the whole body proves every message passes a check, so
    # the per-message work (a serialisation, a walk) is skipped on the hot path.
    check_size: bool = True
    check_depth: bool = True
    check_characters: bool = True


_ESCAPES = re.compile(r"\\u(?:[dD][89a-fA-F]|0000)")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def body_screen(text: str, limits: Limits) -> Limits:
    """Which per-message checks the body as a whole already settles.

    A message is not larger than the body (its compact re-serialisation grows only where a
    float is spelled shorter than Python writes it: a margin of 3x is kept). Surrogates and
    NUL can only come from `\\u` escapes in the text (strict UTF-8 decoding produces
    neither). Counting every bracket, inside strings too, over-estimates the depth. So a body
    under the message limit, without those escapes, or shallow enough, needs none of the
    matching per-message checks.
    """
    # Peel empty pairs off the brackets alone, one nesting level per round (C-speed string
    # operations); brackets inside strings may leave some unpaired, and then the per-message
    # walk decides.
    brackets = text.encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKETS)
    rounds = 0
    while brackets and rounds <= limits.max_depth + 2:
        peeled = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if peeled == brackets:
            break
        brackets, rounds = peeled, rounds + 1
    shallow = not brackets and rounds <= limits.max_depth + 2
    return Limits(
        max_message_bytes=limits.max_message_bytes,
        max_depth=limits.max_depth,
        max_event_age=limits.max_event_age,
        check_size=len(text) * 3 > limits.max_message_bytes,
        # The body adds two levels around a message in a batch (the object, the list).
        check_depth=not shallow,
        check_characters=_ESCAPES.search(text) is not None,
    )


def message_validate(
    raw: Any,
    *,
    index: int,
    endpoint_type: str | None,
    batch_sent_at: dt.datetime | None,
    received_at: dt.datetime,
    limits: Limits,
) -> Message | Rejection:
    """One message, checked against the Segment spec and the source's limits."""
    if not isinstance(raw, dict):
        return Rejection(index, "invalid_message", "message must be a JSON object")
    try:
        return _validate(raw, index, endpoint_type, batch_sent_at, received_at, limits)
    except _Reject as exc:
        return Rejection(index, exc.code, exc.reason)
    except ValueError as exc:
        return Rejection(index, "invalid_field", str(exc))


class _Reject(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _validate(
    raw: dict[str, Any],
    index: int,
    endpoint_type: str | None,
    batch_sent_at: dt.datetime | None,
    received_at: dt.datetime,
    limits: Limits,
) -> Message:
    kind = raw.get("type", endpoint_type)
    if endpoint_type is not None and kind != endpoint_type:
        raise _Reject("type_mismatch", f"type must be {endpoint_type!r} on this endpoint")
    if not isinstance(kind, str) or kind not in SEGMENT_TYPES:
        raise _Reject("unknown_type", "type must be one of " + ", ".join(SEGMENT_TYPES))

    if limits.check_size or limits.check_characters:
        try:
            text = json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise _Reject(
                "invalid_utf8", "message holds an unpaired surrogate (not UTF-8)"
            ) from None
        if size > limits.max_message_bytes:
            raise _Reject(
                "message_too_large",
                f"message is {size} bytes; the limit is {limits.max_message_bytes}",
            )
        if "\\u0000" in text and _NUL.search(text):
            raise _Reject("invalid_character", "message holds a NUL character")
    if limits.check_depth and depth_of(raw, limits.max_depth) > limits.max_depth:
        raise _Reject("too_deep", f"message is nested deeper than {limits.max_depth} levels")

    message_id = raw.get("messageId")
    if not isinstance(message_id, str) or not message_id.strip():
        raise _Reject("missing_message_id", "messageId must be a non-empty string")
    message_id = message_id.strip()
    if len(message_id) > MAX_ID_LENGTH:
        raise _Reject("invalid_field", f"messageId is longer than {MAX_ID_LENGTH} characters")

    user_id = _identifier(raw.get("userId"), "userId")
    anonymous_id = _identifier(raw.get("anonymousId"), "anonymousId")
    if user_id is None and anonymous_id is None:
        raise _Reject("missing_identity", "userId or anonymousId is required")

    context = _object(raw.get("context"), "context")
    traits = {
        **_object(context.get("traits"), "context.traits"),
        **_object(raw.get("traits"), "traits"),
    }
    properties = _object(raw.get("properties"), "properties")
    _object(raw.get("integrations"), "integrations")

    name = ""
    previous_id = group_id = None
    if kind == "track":
        event = raw.get("event")
        if not isinstance(event, str) or not event.strip():
            raise _Reject("missing_event", "track needs an event name (string)")
        name = event.strip()
    elif kind in ("page", "screen"):
        page_name = raw.get("name")
        if page_name is not None and not isinstance(page_name, str):
            raise ValueError("name must be a string")
        name = (page_name or "").strip()
    elif kind == "alias":
        previous_id = _identifier(raw.get("previousId"), "previousId")
        if previous_id is None or user_id is None:
            raise _Reject("missing_identity", "alias needs previousId and userId")
    elif kind == "group":
        group_id = _identifier(raw.get("groupId"), "groupId")
        if group_id is None:
            raise _Reject("missing_group_id", "group needs a groupId")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"event name is longer than {MAX_NAME_LENGTH} characters")

    original = parse_time(raw.get("timestamp", raw.get("originalTimestamp")), "timestamp")
    sent_at = parse_time(raw.get("sentAt"), "sentAt") or batch_sent_at
    timestamp, clamped = corrected_time(original, sent_at, received_at)
    if timestamp < received_at - limits.max_event_age:
        raise _Reject(
            "timestamp_too_old",
            f"timestamp is more than {limits.max_event_age.days} days before it was received",
        )
    return Message(
        index=index,
        raw=raw,
        type=kind,
        message_id=message_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        name=name,
        timestamp=timestamp,
        original_timestamp=original,
        sent_at=sent_at,
        clamped=clamped,
        traits=traits,
        properties=properties,
        context=context,
        previous_id=previous_id,
        group_id=group_id,
    )


def corrected_time(
    original: dt.datetime | None, sent_at: dt.datetime | None, received_at: dt.datetime
) -> tuple[dt.datetime, bool]:
    """Segment's skew correction: receivedAt - (sentAt - originalTimestamp).

    Without a client timestamp the receive time is used; without sentAt the client timestamp is
    trusted as is. A result over a day ahead of the receive time is clamped to it and flagged.
    """
    if original is None:
        return received_at, False
    try:
        corrected = received_at - (sent_at - original) if sent_at is not None else original
    except OverflowError:
        raise _Reject("timestamp_out_of_range", "timestamp and sentAt are too far apart") from None
    if corrected > received_at + CLAMP_AFTER:
        return received_at, True
    return corrected, False


def batch_messages(body: Any, endpoint_type: str | None) -> tuple[list[Any], Any]:
    """The list of raw messages and the top-level sentAt of a request body."""
    if not isinstance(body, dict):
        raise RequestError(400, "invalid_body", "request body must be a JSON object")
    if endpoint_type is None:
        batch = body.get("batch")
        if not isinstance(batch, list):
            raise RequestError(400, "invalid_batch", "batch must be a list of messages")
        if not batch:
            raise RequestError(400, "empty_batch", "batch holds no messages")
        return batch, body.get("sentAt")
    return [body], None
