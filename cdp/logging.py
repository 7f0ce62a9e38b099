"""Log formatting and the filter that keeps personal data out of every log line.

The filter is a last line of defence: code must not log personal data in the first place, but
a stray exception message (a database error quoting a value, say) must not leak it either.

Candidates are found by loose patterns and then checked (IP addresses with `ipaddress`, phone
numbers by digit count and shape), so timestamps, UUIDs, version numbers, durations and counts
such as `1000000 rows` pass through unchanged.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

REDACTED = "[redacted]"

# E-mail addresses, also URL-encoded (`jane%40example.com`). The lookbehind starts a match only
# at the beginning of a run, which keeps a long token (a base64 blob) linear instead of quadratic.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9.!#$%&'*+/=?^_`{|}~-])[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+(?:@|%40)"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)

# IPv4: four dotted numbers not inside a longer dotted or alphanumeric run.
_IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w]|\.\d)")

# IPv6 candidates: hex groups and colons with at least two colons, optionally ending in an
# embedded IPv4; `ipaddress` decides. Times (`09:22:34`) and `std::map` are not valid addresses.
_IPV6 = re.compile(
    r"(?<![\w:.])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f]*:)"
    r"(?:[0-9A-Fa-f:]*:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f:]*[0-9A-Fa-f:])(?![\w:]|\.\d)"
)

# Phone candidates: an optional `+` or `(`, then digits with spaces, dots, dashes and parentheses,
# not glued to letters, other digits or dotted/dashed runs (UUIDs, versions, dates).
_PHONE = re.compile(r"(?<![\w@.+\-/:])[+(]?\d[\d ().\-]{5,}\d(?!\w|[.\-/:]\w)")
_DATE = re.compile(r"(?<!\d)(\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4})(?!\d)")


def _ip_or_keep(match: re.Match[str]) -> str:
    text = match.group(0)
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return text
    return REDACTED


def _is_phone(text: str) -> bool:
    digits = sum(char.isdigit() for char in text)
    if text.startswith("+"):
        # E.164: at most 15 digits; fewer than 8 is no real international number.
        return 8 <= digits <= 15
    if digits > 15:
        return False
    if text.startswith("("):
        # `(415) 555-0132`: an area code in parentheses.
        return digits >= 7 and re.match(r"\(\d{1,5}\)", text) is not None
    separators = re.findall(r"[ ().\-]+", text)
    if not separators:
        # A bare run of digits is usually a count, id or epoch; national numbers start with 0.
        return text.startswith("0") and 10 <= digits <= 11
    if separators == ["."]:
        return False  # a decimal number
    return digits >= 9


def _phone_or_keep(match: re.Match[str]) -> str:
    text = match.group(0)
    if _DATE.search(text):
        # Dates are kept; whatever stands around them is checked on its own.
        pieces = _DATE.split(text)
        return "".join(
            piece if index % 2 else _PHONE.sub(_phone_or_keep, piece)
            for index, piece in enumerate(pieces)
        )
    return REDACTED if _is_phone(text) else text


def redact(text: str) -> str:
    """Replace anything that looks like an e-mail address, phone number or IP address."""
    text = _EMAIL.sub(REDACTED, text)
    text = _IPV6.sub(_ip_or_keep, text)
    text = _IPV4.sub(_ip_or_keep, text)
    return _PHONE.sub(_phone_or_keep, text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(item) for item in value)
    return value


# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class RedactPersonalData(logging.Filter):
    """Rewrites the record's message, arguments, `extra` fields and exception text.

    Exception info is replaced by its redacted text (`exc_text`), so no formatter downstream
    can render the original exception message again. If redaction itself fails, the line is
    replaced rather than passed through unredacted.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self._redact(record)
        except Exception:
            record.msg = "[log message dropped: redaction failed]"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        return True

    def _redact(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg = redact(message)
        record.args = ()
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for name, value in list(record.__dict__.items()):
            if name not in _STANDARD_ATTRS:
                setattr(record, name, _redact_value(value))


class JsonFormatter(_JsonFormatter):
    """One JSON object per line, for log shippers."""
