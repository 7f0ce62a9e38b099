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
    """Keeps the country prefix and the last two digits: `+44*******58`."""
    if not value:
        return ""
    digits = [c for c in value if c.isdigit()]
    if len(digits) < 6:
        return MASK
    head = "+" + "".join(digits[:2]) if value.startswith("+") else ""
    return f"{head}{'*' * max(len(digits) - len(head) - 1, 3)}{''.join(digits[-2:])}"


def mask_text(value: str | None) -> str:
    """`Jane` -> `J***`."""
    if not value:
        return ""
    return f"{value[:1]}{MASK}"
