"""Reading the audit log: verifying the chain and signing or checking its head."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from django.conf import settings
from django.db import transaction

from cdp.audit.chain import GENESIS, ChainReport, checkpoint_signature, verify_chain
from cdp.audit.models import AuditEntry

CHECKPOINT_LABEL = b"cdp-audit-checkpoint"


class AuditCheckpointError(ValueError):
    """A checkpoint is malformed, forged, or no longer matches the log."""


def audit_chain_verify(
    *,
    key: bytes | None = None,
    progress: Callable[[int], None] | None = None,
    chunk_size: int = 5_000,
) -> ChainReport:
    """Recompute every link of the audit log, in seq order, and report the first broken one.

    Streams rows through a server-side cursor inside one transaction (one snapshot, constant
    memory). `key` defaults to CDP_AUDIT_KEY; `progress` is called every 100,000 entries.
    """
    with transaction.atomic():
        rows = AuditEntry.objects.order_by("seq").iterator(chunk_size=chunk_size)
        return verify_chain(
            rows,
            settings.CDP_AUDIT_KEY if key is None else key,
            AuditEntry.chain_payload,
            seq_of=attrgetter("seq"),
            progress=progress,
        )


def audit_checkpoint(*, key: bytes | None = None) -> dict[str, Any]:
    """The signed head of the log, for an operator to keep outside the database.

    `{"seq", "hash", "at", "signature"}`; an empty log gives seq 0 and the genesis hash. Checking
    it later (`audit_checkpoint_check`) reveals a tail that was truncated or rewritten.
    """
    key = settings.CDP_AUDIT_KEY if key is None else key
    head = AuditEntry.objects.order_by("-seq").values_list("seq", "hash", "at").first()
    seq, head_hash, at = (head[0], bytes(head[1]), head[2]) if head else (0, GENESIS, None)
    return {
        "seq": seq,
        "hash": head_hash.hex(),
        "at": at.isoformat() if at else None,
        "signature": checkpoint_signature(key, CHECKPOINT_LABEL, seq, head_hash).hex(),
    }


def audit_checkpoint_check(checkpoint: dict[str, Any], *, key: bytes | None = None) -> None:
    """Raise AuditCheckpointError unless the signed checkpoint's entry still has its hash."""
    key = settings.CDP_AUDIT_KEY if key is None else key
    try:
        seq = checkpoint["seq"]
        head_hash = bytes.fromhex(checkpoint["hash"])
        signature = bytes.fromhex(checkpoint["signature"])
    except (KeyError, TypeError, ValueError):
        raise AuditCheckpointError(
            "checkpoint must be a JSON object with seq, hash (hex) and signature (hex)"
        ) from None
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise AuditCheckpointError("checkpoint seq must be a non-negative integer")
    expected = checkpoint_signature(key, CHECKPOINT_LABEL, seq, head_hash)
    if not hmac.compare_digest(signature, expected):
        raise AuditCheckpointError("checkpoint signature is invalid (wrong key or edited file)")
    if seq == 0:
        if head_hash != GENESIS:
            raise AuditCheckpointError("checkpoint at seq 0 must carry the genesis hash")
        return
    stored = AuditEntry.objects.filter(seq=seq).values_list("hash", flat=True).first()
    if stored is None:
        raise AuditCheckpointError(f"entry seq {seq} named by the checkpoint is missing")
    if not hmac.compare_digest(bytes(stored), head_hash):
        raise AuditCheckpointError(f"entry seq {seq} no longer has the checkpoint's hash")
