"""Masked renderings of personal data for list pages and logs-adjacent screens."""

from __future__ import annotations

MASK = "***"


def mask_email(value: str | None) -> str:
    """`jane@example.com` -> `j***@example.com`."""
    if not value:
        return ""
    local, at, domain = value.rpartition("@")
    if not at:
        return MASK
    return f"{local[:1]}{MASK}@{domain}"


def mask_phone(value: str | None) -> str:
    """Keeps the first two digits after a `+` and the last two: `+44********58`."""
    if not value:
        return ""
    digits = [c for c in value if c.isdigit()]
    if len(digits) < 6:
        return MASK
    shown_prefix = digits[:2] if value.startswith("+") else []
    head = "+" + "".join(shown_prefix) if shown_prefix else ""
    hidden = len(digits) - len(shown_prefix) - 2
    return f"{head}{'*' * hidden}{''.join(digits[-2:])}"


def mask_text(value: str | None) -> str:
    """`Jane` -> `J***`."""
    if not value:
        return ""
    return f"{value[:1]}{MASK}"
