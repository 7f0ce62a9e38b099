"""Log formatting and the filter that keeps personal data out of every log line.

The filter is a last line of defence: code must not log personal data in the first place, but
a stray exception message (a database error quoting a value, say) must not leak it either.
"""

from __future__ import annotations

import logging
import re

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

REDACTED = "[redacted]"

_PATTERNS = [
    # e-mail addresses
    re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"),
    # IPv4 addresses
    re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"),
    # IPv6 addresses (full and compressed forms with at least three groups)
    re.compile(r"\b(?:[0-9A-Fa-f]{1,4}:){2,7}(?::|[0-9A-Fa-f]{1,4})\b"),
    # phone numbers: an optional +, then 7 to 15 digits with common separators
    re.compile(r"(?<![\w.])\+?\(?\d{1,4}\)?(?:[ .\-]?\(?\d{2,4}\)?){2,5}(?![\w.])"),
]


def redact(text: str) -> str:
    """Replace anything that looks like an e-mail, phone number or IP address."""
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


class RedactPersonalData(logging.Filter):
    """Rewrites the record's message, arguments and exception text with personal data masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per line, for log shippers."""
