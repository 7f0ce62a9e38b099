"""The consent ledger's chain: its keys, appending under the chain lock, and verification.

Built on the generic keyed chain of `cdp.audit.chain`, with its own lock name and its own key,
HMAC(CDP_AUDIT_KEY, "cdp-consent-ledger"), so a ledger link can never pass as an audit link.
IP addresses and user agents are stored as keyed hashes under a second derived key: they prove
a match when presented again but cannot be read back.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Callable, Sequence
from operator import attrgetter

from django.conf import settings
from django.db import transaction

from cdp.audit.chain import GENESIS, ChainReport, advisory_lock, link_hash, verify_chain
from consent.models import ConsentEvent

LEDGER_CHAIN = "consent.ConsentEvent"
LEDGER_LABEL = b"cdp-consent-ledger"
PROOF_LABEL = b"cdp-consent-proof"
INSERT_CHUNK = 5_000


def ledger_key() -> bytes:
    return hmac.new(settings.CDP_AUDIT_KEY, LEDGER_LABEL, hashlib.sha256).digest()


def _proof_key() -> bytes:
    return hmac.new(settings.CDP_AUDIT_KEY, PROOF_LABEL, hashlib.sha256).digest()


def proof_hash(kind: str, value: str | None) -> bytes | None:
    """Keyed hash of an IP address or user agent (normalised first); None for no value."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if kind == "ip":
        try:
            text = str(ipaddress.ip_address(text))
        except ValueError:
            pass
    message = kind.encode() + b"|" + text.encode("utf-8")
    return hmac.new(_proof_key(), message, hashlib.sha256).digest()


def ledger_append(entries: Sequence[ConsentEvent]) -> list[ConsentEvent]:
    """Number, link and insert `entries` at the head of the ledger, in the caller's transaction.

    Takes the chain's advisory lock (held until the transaction ends), so concurrent writers
    queue instead of forking the chain; one SELECT of the head and one INSERT per 5,000 entries.
    Each entry's `proof` must already be in its JSON round-trip form.
    """
    if not entries:
        return []
    key = ledger_key()
    with transaction.atomic():
        advisory_lock(LEDGER_CHAIN)
        head = ConsentEvent.objects.order_by("-seq").values_list("seq", "hash").first()
        seq, prev_hash = (head[0], bytes(head[1])) if head else (0, GENESIS)
        for entry in entries:
            seq += 1
            entry.seq = seq
            entry.prev_hash = prev_hash
            entry.hash = prev_hash = link_hash(key, prev_hash, entry.chain_payload())
        ConsentEvent.objects.bulk_create(entries, batch_size=INSERT_CHUNK)
    return list(entries)


def ledger_verify(
    *, key: bytes | None = None, progress: Callable[[int], None] | None = None
) -> ChainReport:
    """Recompute every link in seq order (one snapshot, streamed) and report the first break."""
    with transaction.atomic():
        rows = ConsentEvent.objects.order_by("seq").iterator(chunk_size=5_000)
        return verify_chain(
            rows,
            ledger_key() if key is None else key,
            ConsentEvent.chain_payload,
            seq_of=attrgetter("seq"),
            progress=progress,
        )
