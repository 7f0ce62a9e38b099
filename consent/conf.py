"""Consent settings, read from Django settings with an environment fallback.

`CDP_CONSENT_CATEGORY_MAP`: JSON object mapping a consent-manager category name (Segment's
`context.consent.categoryPreferences` keys, matched case-insensitively) to a list of purpose codes.
`CDP_CONSENT_HOOK_MODULES`: comma-separated modules imported at start-up that register withdrawal
hooks (plugins outside INSTALLED_APPS). `CDP_CONSENT_CONTROLLER`: the controller's name on receipts.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULT_CATEGORY_MAP: dict[str, list[str]] = {
    "analytics": ["analytics"],
    "marketing": ["marketing"],
    "advertising": ["marketing", "sale_sharing"],
    "personalization": ["personalization"],
    "profiling": ["profiling"],
}


def _setting(name: str) -> Any:
    value = getattr(settings, name, None)
    return os.environ.get(name) if value is None else value


def parse_category_map(name: str, value: Any) -> dict[str, list[str]]:
    """Validate a category map (a JSON string or a dict); the error names the variable."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str)
        and isinstance(v, list)
        and all(isinstance(code, str) and code for code in v)
        for k, v in value.items()
    ):
        raise ImproperlyConfigured(
            f"{name} must be a JSON object mapping category names to lists of purpose codes"
        )
    return {key.strip().lower(): list(codes) for key, codes in value.items()}


def category_map() -> dict[str, list[str]]:
    value = _setting("CDP_CONSENT_CATEGORY_MAP")
    if value in (None, ""):
        return DEFAULT_CATEGORY_MAP
    return parse_category_map("CDP_CONSENT_CATEGORY_MAP", value)


def hook_modules() -> list[str]:
    value = _setting("CDP_CONSENT_HOOK_MODULES") or ""
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def controller_name() -> str:
    return str(_setting("CDP_CONSENT_CONTROLLER") or "The data controller")


GPC_LAST_UPDATE = "2026-11-23"


def gpc_last_update() -> str:
    """`CDP_GPC_LAST_UPDATE` (YYYY-MM-DD): when the GPC handling last changed."""
    value = str(_setting("CDP_GPC_LAST_UPDATE") or GPC_LAST_UPDATE)
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise ImproperlyConfigured(
            f"CDP_GPC_LAST_UPDATE must be YYYY-MM-DD; got {value!r}"
        ) from None
