"""System checks for the keys and switches a deployment must get right.

Settings already refuse a malformed variable at start-up; these checks catch what parsing cannot:
keys reused for two purposes, development keys or DEBUG carried into production, and settings
overridden after start-up. Messages name the variable, never its value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

from cdp.env import decode_key, parse_keks

KEY_BYTES = 32


def _is_key(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == KEY_BYTES


def _keks() -> list[tuple[str, bytes]] | None:
    """The configured KEKs if they are well formed, else None."""
    keks = getattr(settings, "CDP_KEKS", None)
    if not isinstance(keks, list | tuple) or not keks:
        return None
    for item in keks:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            return None
        key_id, key = item
        if not isinstance(key_id, str) or not key_id or not _is_key(key):
            return None
    return [(key_id, key) for key_id, key in keks]


@register(Tags.security)
def check_encryption_keys(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list[Error]:
    """Each key exists, is 32 bytes, and serves one purpose only.

    Reusing a key across purposes would let, say, a blind index leak information usable against
    the key-encryption key, and would make rotating one silently rotate the other.
    """
    errors: list[Error] = []
    keks = _keks()
    if keks is None:
        errors.append(
            Error(
                "CDP_KEKS must list at least one key-encryption key as (id, 32-byte key).",
                hint="Set CDP_KEKS to 'id:key' items; see README, Configuration.",
                id="cdp.E001",
            )
        )
    named = {"CDP_INDEX_KEY": "cdp.E002", "CDP_AUDIT_KEY": "cdp.E003"}
    present: dict[str, bytes] = {}
    for name, check_id in named.items():
        value = getattr(settings, name, None)
        if _is_key(value):
            present[name] = value
        else:
            errors.append(Error(f"{name} must be a 32-byte key.", id=check_id))
    if len(present) == 2 and present["CDP_INDEX_KEY"] == present["CDP_AUDIT_KEY"]:
        errors.append(
            Error(
                "CDP_INDEX_KEY and CDP_AUDIT_KEY are the same key; each needs its own.",
                id="cdp.E004",
            )
        )
    for name, key in present.items():
        for key_id, kek in keks or []:
            if key == kek:
                errors.append(
                    Error(
                        f"{name} is the same key as CDP_KEKS key id {key_id!r}; "
                        "each needs its own.",
                        id="cdp.E005",
                    )
                )
    if keks is not None and len({kek for _, kek in keks}) != len(keks):
        errors.append(
            Error("CDP_KEKS lists the same key under two ids.", id="cdp.E006"),
        )
    return errors


def _development_keys(var_dir: Path) -> dict[str, str]:
    path = var_dir / "dev-keys.json"
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {k: v for k, v in loaded.items() if isinstance(v, str)}


def _decoded_development_keys(dev: dict[str, str]) -> dict[str, set[bytes]]:
    decoded: dict[str, set[bytes]] = {
        "CDP_KEKS": set(),
        "CDP_INDEX_KEY": set(),
        "CDP_AUDIT_KEY": set(),
    }
    try:
        if "CDP_KEKS" in dev:
            decoded["CDP_KEKS"] = {key for _, key in parse_keks("CDP_KEKS", dev["CDP_KEKS"])}
        for name in ("CDP_INDEX_KEY", "CDP_AUDIT_KEY"):
            if name in dev:
                decoded[name] = {decode_key(name, dev[name])}
    except ImproperlyConfigured:
        pass
    return decoded


@register(Tags.security, deploy=True)
def check_production_hygiene(
    app_configs: Iterable[Any] | None = None, **kwargs: Any
) -> list[Error]:
    """No development key and no DEBUG in a deployment (`manage.py check --deploy`).

    Development keys live in a readable file under var/; data encrypted with them is as good as
    plaintext to anyone with a copy of the checkout.
    """
    errors: list[Error] = []
    dev = _development_keys(Path(getattr(settings, "VAR_DIR", "var")))
    dev_keys = _decoded_development_keys(dev)
    all_dev_keys = set().union(*dev_keys.values())
    configured: list[tuple[str, bytes]] = [(f"CDP_KEKS ({kid})", k) for kid, k in _keks() or []]
    for name in ("CDP_INDEX_KEY", "CDP_AUDIT_KEY"):
        value = getattr(settings, name, None)
        if _is_key(value):
            configured.append((name, value))
    for name, key in configured:
        if key in all_dev_keys:
            errors.append(
                Error(
                    f"{name} is a development key from var/dev-keys.json.",
                    hint="Generate production keys; see README, Configuration.",
                    id="cdp.E007",
                )
            )
    secret = str(getattr(settings, "SECRET_KEY", ""))
    if secret.startswith(("dev-insecure-", "django-insecure")) or secret == dev.get("SECRET_KEY"):
        errors.append(
            Error(
                "SECRET_KEY is a development key.",
                hint="Set SECRET_KEY to a long random value; see README, Configuration.",
                id="cdp.E008",
            )
        )
    if settings.DEBUG:
        errors.append(Error("DEBUG is on in a deployment; set DEBUG=0.", id="cdp.E009"))
    return errors
