"""A keyed hash chain: the tamper evidence shared by the audit log and the consent ledger.

Each link is HMAC-SHA256(key, prev_hash || canonical_bytes(payload)). A plain hash chain can be
recomputed by anyone who can write the database; keying it with a secret from configuration means
a rewritten row cannot be given a valid hash without that secret. Writers to one chain take a
transaction-scoped advisory lock, so two writers never link to the same predecessor (a fork).

This module knows no models: a chain's owner supplies its rows and says how a row becomes a
payload, so each table keeps its own key, lock name and payload shape.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

HASH_SIZE = 32
GENESIS = bytes(HASH_SIZE)

# Floats this large come back from PostgreSQL's jsonb as integers (1e20 -> 100000000000000000000),
# which would change their canonical form after a round trip and break the chain.
_MAX_EXACT_FLOAT = 2.0**53

HASH_MISMATCH = "hash mismatch"
LINK_BROKEN = "previous-hash link broken"
SEQUENCE_GAP = "sequence gap"


class ChainError(RuntimeError):
    """A chain operation was attempted in a state that would let the chain fork."""


def _canonical_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise TypeError("naive datetimes are ambiguous in a hash chain; pass an aware one")
        utc = value.astimezone(dt.UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    raise TypeError(f"{type(value).__name__} has no canonical form in a hash chain")


def _check_floats(value: Any) -> None:
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) >= _MAX_EXACT_FLOAT:
            raise ValueError("floats must be finite and below 2**53 in a hash chain")
    elif isinstance(value, dict):
        for item in value.values():
            _check_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_floats(item)


def canonical_bytes(payload: dict[str, Any]) -> bytes:
    """The one byte form of a payload: sorted keys, no whitespace, UTF-8.

    Datetimes become ISO-8601 UTC with microseconds, UUIDs strings and bytes hex, so an entry read
    back from the database hashes exactly as it did when it was written.
    """
    _check_floats(payload)
    return json.dumps(
        payload,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_canonical_default,
    ).encode("utf-8")


def json_roundtrip(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as it will read back from a JSON column (datetimes and UUIDs as strings)."""
    return json.loads(canonical_bytes(payload))


def link_hash(key: bytes, prev_hash: bytes, payload: dict[str, Any]) -> bytes:
    """HMAC-SHA256(key, prev_hash || canonical_bytes(payload)); GENESIS precedes the first link."""
    if len(prev_hash) != HASH_SIZE:
        raise ValueError(f"prev_hash must be {HASH_SIZE} bytes, got {len(prev_hash)}")
    return hmac.new(key, bytes(prev_hash) + canonical_bytes(payload), hashlib.sha256).digest()


def checkpoint_signature(key: bytes, label: bytes, seq: int, head_hash: bytes) -> bytes:
    """Sign a chain head so it can be kept outside the database and checked later.

    The signing key is HMAC(key, label), so a checkpoint signature can never be mistaken for, or
    used as, a chain link. The message is the text `<seq>|<hash hex>`.
    """
    signing_key = hmac.new(key, label, hashlib.sha256).digest()
    message = f"{seq}|{bytes(head_hash).hex()}".encode("ascii")
    return hmac.new(signing_key, message, hashlib.sha256).digest()


def lock_id(name: str) -> int:
    """A stable signed 64-bit id for a chain name (PostgreSQL advisory locks take a bigint)."""
    digest = hashlib.sha256(b"cdp-chain-lock:" + name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def advisory_lock(name: str, *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Serialise writers to the chain `name` until the current transaction ends.

    The lock is transaction-scoped (pg_advisory_xact_lock), so it must be taken inside
    `transaction.atomic()`: in autocommit it would be released before the insert it protects.
    """
    connection = connections[using]
    if not connection.in_atomic_block:
        raise ChainError(
            f"advisory_lock({name!r}) must be called inside transaction.atomic(); "
            "in autocommit the lock would be released at once and the chain could fork"
        )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id(name)])


@dataclass(frozen=True)
class ChainReport:
    """The outcome of walking a chain; `first_broken` is None when every link verified."""

    checked: int
    first_broken: Any = None
    reason: str | None = None
    detail: str = ""
    head_seq: Any = None
    head_hash: bytes = GENESIS

    @property
    def ok(self) -> bool:
        return self.first_broken is None


def verify_chain(
    rows: Iterable[Any],
    key: bytes,
    payload_of: Callable[[Any], dict[str, Any]],
    *,
    seq_of: Callable[[Any], Any] = attrgetter("pk"),
    check_gaps: bool = True,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 100_000,
) -> ChainReport:
    """Walk `rows` (in chain order) and report the first link that does not verify.

    Rows need `prev_hash` and `hash` attributes. Pass a streaming iterable (a queryset's
    `.iterator(chunk_size=...)`) and memory stays constant however long the chain is. With
    `check_gaps`, consecutive integer sequence numbers are required, so a deleted row is reported
    even where its neighbours were re-linked. Stops at the first break: once a link is broken,
    everything after it is suspect anyway.
    """
    expected_prev = GENESIS
    previous_seq: Any = None
    checked = 0
    for row in rows:
        seq = seq_of(row)
        prev_hash = bytes(row.prev_hash)
        stored = bytes(row.hash)
        reason = detail = None
        if check_gaps and previous_seq is not None and seq != previous_seq + 1:
            reason, detail = SEQUENCE_GAP, f"expected {previous_seq + 1}, found {seq}"
        elif not hmac.compare_digest(prev_hash, expected_prev):
            reason, detail = LINK_BROKEN, "prev_hash is not the hash of the entry before it"
        elif not hmac.compare_digest(stored, link_hash(key, prev_hash, payload_of(row))):
            reason, detail = HASH_MISMATCH, "the entry's content or the key does not match its hash"
        if reason is not None:
            return ChainReport(
                checked=checked,
                first_broken=seq,
                reason=reason,
                detail=detail or "",
                head_seq=previous_seq,
                head_hash=expected_prev,
            )
        checked += 1
        expected_prev = stored
        previous_seq = seq
        if progress is not None and checked % progress_every == 0:
            progress(checked)
    return ChainReport(checked=checked, head_seq=previous_seq, head_hash=expected_prev)
