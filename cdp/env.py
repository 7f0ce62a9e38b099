"""Typed readers for environment variables.

Each helper refuses a malformed value with an error that names the variable, so a typo in a
deployment stops start-up instead of running with a silent default.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    return (os.environ if environ is None else environ).get(name)


def env_str(
    name: str, default: str | None = None, *, environ: Mapping[str, str] | None = None
) -> str | None:
    value = _raw(name, environ)
    return default if value is None else value


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name} must be one of 1/0, true/false, yes/no, on/off; got {value!r}"
    )


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number; got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}; got {number}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}; got {number}")
    return number


def env_list(
    name: str, default: list[str], *, environ: Mapping[str, str] | None = None
) -> list[str]:
    """A comma-separated list; blanks around items are ignored, empty items refused."""
    value = _raw(name, environ)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",")]
    if any(item == "" for item in items):
        raise ImproperlyConfigured(
            f"{name} is a comma-separated list with an empty item (item {items.index('') + 1})"
        )
    return items


def decode_key(name: str, value: str) -> bytes:
    """Decode a 32-byte URL-safe base64 key; the error names the variable, never the value."""
    text = value.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ImproperlyConfigured(f"{name} is not URL-safe base64") from None
    if len(raw) != 32:
        raise ImproperlyConfigured(f"{name} must decode to 32 bytes; it decodes to {len(raw)}")
    return raw


def parse_keks(name: str, value: str) -> list[tuple[str, bytes]]:
    """Parse `id:key,id:key`: versioned key-encryption keys, the first one primary."""
    keks: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    for position, item in enumerate(env_list(name, [], environ={name: value}), start=1):
        key_id, sep, key = item.partition(":")
        key_id = key_id.strip()
        if not sep or not key_id or not key.strip():
            raise ImproperlyConfigured(f"{name} item {position} must look like 'id:base64key'")
        if (
            not key_id.isascii()
            or not all(c.isalnum() or c in "-_." for c in key_id)
            or len(key_id) > 32
        ):
            raise ImproperlyConfigured(
                f"{name} item {position}: key id must be 1-32 letters, digits, '-', '_' or '.'"
            )
        if key_id in seen:
            raise ImproperlyConfigured(f"{name} names key id {key_id!r} twice")
        seen.add(key_id)
        keks.append((key_id, decode_key(f"{name} item {position} ({key_id})", key)))
    if not keks:
        raise ImproperlyConfigured(f"{name} must name at least one key")
    return keks


def new_key() -> str:
    """A fresh 32-byte key in the configuration's encoding."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")
