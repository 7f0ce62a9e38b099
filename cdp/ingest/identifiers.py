"""The identifiers a tracking message claims (user id, anonymous id, e-mail, phone), normalised
and indexed for identity resolution.

Normalising and indexing is pure work on the raw string (an HMAC per identifier, and for a
phone number parsing and validating against the numbering plan: about a hundred microseconds,
more than the rest of a message's identifiers together), and the same customers send the same
identifiers again and again: every event carries the user id, mobile SDKs repeat the traits
(e-mail, phone) in every event. So the results are kept per raw string in a bounded LRU cache
of this process, emptied when the index key changes and at least every `CDP_DEK_CACHE_SECONDS`
(an erasure cannot reach another process's memory: as for the data keys, how long a value can
linger there is bounded by time). Whether a value is blocked is decided per request, against
the blocked values in force.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from cdp.crypto.errors import NormalizationError
from cdp.ingest.messages import Message
from cdp.ingest.traits import trait_country
from cdp.profiles.models import IdentityKind
from cdp.profiles.resolution import Claim, Ident, identifier, is_blocked
from cdp.profiles.services import identifier_index

# Raw identifiers whose normalised form and blind index are remembered (a few hundred bytes
# each): the user ids of the customers active in the last minutes, and their traits.
CACHE_SIZE = 32_768


@lru_cache(maxsize=CACHE_SIZE)
def indexed(kind: str, value: str) -> Ident | None:
    """The normalised, indexed identifier (what `identifier` makes before the blocked-value
    check), or None when the string is malformed for its kind; remembered per string."""
    try:
        normalized, index = identifier_index(kind, value)
    except NormalizationError:
        return None
    return Ident(kind, normalized, index)


_emptied_at = 0.0


def _forget_old() -> None:
    """Empty the cache when it was last emptied `CDP_DEK_CACHE_SECONDS` ago or more."""
    global _emptied_at
    now = time.monotonic()
    if now - _emptied_at >= settings.CDP_DEK_CACHE_SECONDS:
        indexed.cache_clear()
        _emptied_at = now


@receiver(setting_changed)
def _forget(*, setting: str, **kwargs: object) -> None:
    if setting == "CDP_INDEX_KEY":
        indexed.cache_clear()


class BatchIdentifiers:
    """Normalised, indexed identifiers for one request: a value met again in the same batch (a
    session's events, an identify next to its tracks) is normalised and hashed once. Lives only
    as long as the request."""

    def __init__(self, blocked: dict[str, set[str]]) -> None:
        _forget_old()
        self.blocked = blocked
        self.seen: dict[tuple[str, str], Ident | None] = {}

    def get(self, kind: str, value: Any) -> Ident | None:
        if value is None:
            return None
        if value.__class__ is not str:
            return identifier(kind, value, self.blocked)
        key = (kind, value)
        try:
            return self.seen[key]
        except KeyError:
            ident = self.seen[key] = self._new(kind, value)
            return ident

    def _new(self, kind: str, value: str) -> Ident | None:
        ident = indexed(kind, value)
        if ident is None or is_blocked(kind, ident.normalized, self.blocked):
            return None
        return ident


def identity_claim(message: Message, identifiers: BatchIdentifiers) -> Claim:
    """The identifiers `message` carries, strongest first, and an alias call's previous id."""
    idents = []
    traits = message.traits
    for kind, value in (
        (IdentityKind.USER_ID, message.user_id),
        (IdentityKind.ANONYMOUS_ID, message.anonymous_id),
        (IdentityKind.EMAIL, traits.get("email") if traits else None),
        (IdentityKind.PHONE, traits.get("phone") if traits else None),
    ):
        ident = identifiers.get(kind, value)
        if ident is not None:
            idents.append(ident)
    previous = []
    if message.previous_id is not None:
        previous = [
            ident
            for kind in (IdentityKind.USER_ID, IdentityKind.ANONYMOUS_ID)
            if (ident := identifiers.get(kind, message.previous_id)) is not None
        ]
    return Claim(message.index, idents, previous, country=trait_country(traits) if traits else "")
