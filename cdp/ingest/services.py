"""Writes for sources (create, rotate, revoke) and the entry point of event ingestion.

Each source operation owns its transaction and writes its audit entry inside it. A new write key
is returned to the caller once and never stored or logged in the clear.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from cdp.audit.services import audit_record
from cdp.ingest.keys import KEY_PREFIX_SHOWN, write_key_hash, write_key_new
from cdp.ingest.models import Source, SourceKind

DEFAULT_ROTATION_GRACE = dt.timedelta(hours=24)


@dataclass(frozen=True)
class IssuedKey:
    source: Source
    write_key: str  # shown once; only its hash is stored


LIMIT_FIELDS = (
    "enabled",
    "max_request_bytes",
    "max_message_bytes",
    "max_batch_messages",
    "max_depth",
    "max_event_age_days",
    "rate_limit_per_minute",
)


def source_create(
    *, name: str, actor: str, kind: str = SourceKind.SERVER, **limits: Any
) -> IssuedKey:
    """Create a source with a fresh write key (returned once); `limits` override the defaults
    (any of LIMIT_FIELDS)."""
    unknown = set(limits) - set(LIMIT_FIELDS)
    if unknown:
        raise TypeError(f"source_create() got unknown settings: {sorted(unknown)}")
    key = write_key_new()
    with transaction.atomic():
        source = Source(
            name=name.strip(),
            kind=kind,
            key_hash=write_key_hash(key),
            key_prefix=key[:KEY_PREFIX_SHOWN],
            **limits,
        )
        source.full_clean(exclude=["key_hash"])
        source.save(force_insert=True)
        audit_record(
            actor=actor,
            action="ingest.source.create",
            object_type="ingest.source",
            object_id=str(source.id),
            details={"kind": source.kind},
        )
    return IssuedKey(source, key)


def source_rotate_key(
    *, source: Source, actor: str, grace: dt.timedelta = DEFAULT_ROTATION_GRACE
) -> IssuedKey:
    """Issue a new write key; the current one keeps working for `grace`, then stops.

    Clients can be moved to the new key without dropping events. A zero grace invalidates the
    old key at once (a leaked key). Rotating again replaces the previous key, so at most two
    keys are ever valid.
    """
    key = write_key_new()
    now = timezone.now()
    with transaction.atomic():
        locked = Source.objects.select_for_update().get(pk=source.pk)
        locked.previous_key_hash = bytes(locked.key_hash) if grace > dt.timedelta(0) else None
        locked.previous_key_valid_until = now + grace if grace > dt.timedelta(0) else None
        locked.key_hash = write_key_hash(key)
        locked.key_prefix = key[:KEY_PREFIX_SHOWN]
        locked.key_rotated_at = now
        locked.save()
        audit_record(
            actor=actor,
            action="ingest.source.rotate_key",
            object_type="ingest.source",
            object_id=str(source.id),
            details={"grace_seconds": int(grace.total_seconds())},
        )
    return IssuedKey(locked, key)


def source_revoke(*, source: Source, actor: str) -> Source:
    """Revoke every key of the source for good: its calls get 403 from now on."""
    with transaction.atomic():
        locked = Source.objects.select_for_update().get(pk=source.pk)
        locked.revoked_at = timezone.now()
        locked.enabled = False
        locked.previous_key_hash = None
        locked.previous_key_valid_until = None
        locked.save()
        audit_record(
            actor=actor,
            action="ingest.source.revoke",
            object_type="ingest.source",
            object_id=str(source.id),
        )
    return locked
