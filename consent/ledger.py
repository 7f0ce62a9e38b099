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
import json
from collections.abc import Callable, Sequence
from functools import lru_cache
from operator import attrgetter

from django.conf import settings
from django.db import connection, transaction

from cdp.audit.chain import GENESIS, ChainReport, advisory_lock, link_hash, verify_chain
from consent.models import ConsentEvent

LEDGER_CHAIN = "consent.ConsentEvent"
LEDGER_LABEL = b"cdp-consent-ledger"
PROOF_LABEL = b"cdp-consent-proof"
INSERT_CHUNK = 5_000


@lru_cache(maxsize=8)
def _derive(key: bytes, label: bytes) -> bytes:
    return hmac.new(key, label, hashlib.sha256).digest()


def ledger_key() -> bytes:
    return _derive(settings.CDP_AUDIT_KEY, LEDGER_LABEL)


def _proof_key() -> bytes:
    return _derive(settings.CDP_AUDIT_KEY, PROOF_LABEL)


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
        for start in range(0, len(entries), INSERT_CHUNK):
            _insert(entries[start : start + INSERT_CHUNK])
    return list(entries)


# (column, PostgreSQL array element type) in table order; one INSERT ... SELECT FROM unnest(...)
# per chunk keeps the statement small and skips the ORM's per-value compilation.
_COLUMNS = (
    ("seq", "bigint"),
    ("receipt_id", "uuid"),
    ("customer_id", "uuid"),
    ("purpose_code", "varchar"),
    ("purpose_version", "integer"),
    ("notice_hash", "varchar"),
    ("granted", "boolean"),
    ("at", "timestamptz"),
    ("recorded_at", "timestamptz"),
    ("expires_at", "timestamptz"),
    ("channel", "varchar"),
    ("method", "varchar"),
    ("jurisdiction", "varchar"),
    ("ip_hash", "bytea"),
    ("user_agent_hash", "bytea"),
    ("actor", "varchar"),
    ("proof", "jsonb"),
    ("prev_hash", "bytea"),
    ("hash", "bytea"),
)
_INSERT = """
INSERT INTO consent_consentevent
    (seq, receipt_id, customer_id, purpose_code, purpose_version, notice_hash, granted, at,
     recorded_at, expires_at, channel, method, jurisdiction, ip_hash, user_agent_hash, actor,
     proof, prev_hash, hash)
SELECT * FROM unnest(
    %s::bigint[], %s::uuid[], %s::uuid[], %s::varchar[], %s::integer[], %s::varchar[],
    %s::boolean[], %s::timestamptz[], %s::timestamptz[], %s::timestamptz[], %s::varchar[],
    %s::varchar[], %s::varchar[], %s::bytea[], %s::bytea[], %s::varchar[], %s::jsonb[],
    %s::bytea[], %s::bytea[])
"""


def _insert(entries: Sequence[ConsentEvent]) -> None:
    columns: list[list[object]] = []
    for name, _ in _COLUMNS:
        if name == "proof":
            columns.append([json.dumps(e.proof) for e in entries])
        else:
            columns.append([getattr(e, name) for e in entries])
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, columns)
    for entry in entries:
        entry._state.adding = False


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
