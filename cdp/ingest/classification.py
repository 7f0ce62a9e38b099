"""Which trait and property keys are personal: the PropertyClass registry, cached briefly.

Unknown keys are personal, so a new field is encrypted until someone decides otherwise. Keys
are compared without case or separators (`firstName`, `first_name` and `First-Name` are one
key). The cache lives a few seconds, so an edit in the admin takes effect quickly in every
worker without a query per request.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from cdp.ingest.models import PropertyClass, PropertyClassKind, PropertyScope

CACHE_SECONDS = 10.0
# Keys as they arrive -> their class, per loaded registry: the same few property keys come in
# every event. Bounded, because keys are chosen by the client.
_MEMO_KEYS = 4_096
_SEPARATORS = re.compile(r"[\s_\-.]+")


def normalize_key(key: str) -> str:
    return _SEPARATORS.sub("", str(key)).lower()


@dataclass(frozen=True)
class Classes:
    trait: dict[str, str]
    prop: dict[str, str]
    _prop_memo: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def trait_kind(self, key: str) -> str:
        return self.trait.get(normalize_key(key), PropertyClassKind.PERSONAL)

    def property_kind(self, key: str) -> str:
        kind = self._prop_memo.get(key)
        if kind is None:
            kind = self.prop.get(normalize_key(key), PropertyClassKind.PERSONAL)
            if len(self._prop_memo) < _MEMO_KEYS:
                self._prop_memo[key] = kind
        return kind


_cached: tuple[float, Classes] | None = None


def classes() -> Classes:
    global _cached
    now = time.monotonic()
    if _cached is not None and _cached[0] > now:
        return _cached[1]
    trait: dict[str, str] = {}
    prop: dict[str, str] = {}
    for key, scope, kind in PropertyClass.objects.values_list("key", "scope", "kind"):
        normalized = normalize_key(key)
        if scope in (PropertyScope.TRAITS, PropertyScope.BOTH):
            trait[normalized] = kind
        if scope in (PropertyScope.PROPERTIES, PropertyScope.BOTH):
            prop[normalized] = kind
    result = Classes(trait, prop)
    _cached = (now + CACHE_SECONDS, result)
    return result


def property_classes_seed() -> int:
    """Create the default classes that are missing (migration 0002; tests after a flush)."""
    from cdp.ingest.classification_defaults import (
        NON_PERSONAL_PROPERTIES,
        NON_PERSONAL_TRAITS,
        PERSONAL_TRAITS,
        SENSITIVE_TRAITS,
    )

    rows = (
        [(PropertyScope.TRAITS, k, PropertyClassKind.PERSONAL) for k in PERSONAL_TRAITS]
        + [(PropertyScope.TRAITS, k, PropertyClassKind.SENSITIVE) for k in SENSITIVE_TRAITS]
        + [(PropertyScope.TRAITS, k, PropertyClassKind.NON_PERSONAL) for k in NON_PERSONAL_TRAITS]
        + [
            (PropertyScope.PROPERTIES, k, PropertyClassKind.NON_PERSONAL)
            for k in NON_PERSONAL_PROPERTIES
        ]
    )
    created = PropertyClass.objects.bulk_create(
        [PropertyClass(scope=scope, key=key, kind=kind) for scope, key, kind in rows],
        ignore_conflicts=True,
    )
    classes_forget()
    return len(created)


def classes_forget() -> None:
    """Drop the cache (the admin calls this after an edit; tests between cases)."""
    global _cached
    _cached = None


_NON_PERSONAL = PropertyClassKind.NON_PERSONAL.value


def non_personal_properties(properties: dict[str, Any], table: Classes) -> dict[str, Any]:
    """The properties that may be kept in plaintext; lists of objects (products) are filtered
    item by item with the same rules."""
    kept: dict[str, Any] = {}
    kind = table.property_kind
    for key, value in properties.items():
        if kind(key) != _NON_PERSONAL:
            continue
        if isinstance(value, dict):
            value = non_personal_properties(value, table)
        elif isinstance(value, list):
            value = [
                non_personal_properties(v, table) if isinstance(v, dict) else v
                for v in value
                if not isinstance(v, list)
            ]
        kept[key] = value
    return kept
