"""The ingestion pipeline for one request, set-based from end to end.

validated messages -> (after a conflict only: per-message locks -> duplicates) -> suppressed
identities -> identity resolution for the whole batch -> new profiles, links, merges -> identify
traits -> consent carried in the messages (and Sec-GPC) -> the analytics purpose -> encrypt ->
one COPY, all in one transaction -> after commit, the touched customer ids go to a Celery task.

Counts reconcile: received = accepted + duplicate + rejected + suppressed.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from django.db import transaction

from cdp.audit.services import actor_for_source, audit_record
from cdp.crypto import aead
from cdp.crypto.subject_keys import (
    DataKey,
    subject_keys_held,
)
from cdp.db import copy_binary, raw_cursor, time_ordered_ids
from cdp.ingest.classification import Classes, classes, non_personal_properties
from cdp.ingest.consent_context import (
    batch_consent_read,
    consent_from_messages,
    customers_allowed,
    merges_respect_consent,
)
from cdp.ingest.identifiers import BatchIdentifiers, identity_claim
from cdp.ingest.messages import Message, Rejection, RequestError
from cdp.ingest.models import Event, Source
from cdp.ingest.selectors import suppressed_indexes
from cdp.ingest.traits import (
    profile_initial_fields,
    profile_update,
    profile_update_merge,
    profile_updates_apply,
)
from cdp.profiles.resolution import (
    Claim,
    blocked_values,
    customers_create_many,
    merges_apply,
    resolution_plan,
)

ANALYTICS_PURPOSE = "analytics"
TASK_CHUNK = 1_000
# Advisory lock classes for ingestion (the two-key form never collides with the one-key chain
# locks). Message ids are locked first, identities second, each set in sorted order, in two
# classes so that the two phases cannot wait on each other: no deadlock between batches.
_MESSAGE_LOCKS = 0x1D6E
_IDENTITY_LOCKS = 0x1D6F
_AMOUNT_KEYS = ("revenue", "total", "value", "price", "amount")
_AMOUNT_LIMIT = Decimal("1e14")
_AMOUNT_QUANTUM = Decimal("0.0001")
_AMOUNT_TYPES = (int, float, str)


@dataclass
class IngestResult:
    received: int
    accepted: int = 0
    duplicate: int = 0
    suppressed: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    clamped: list[int] = field(default_factory=list)
    consent_errors: int = 0

    def body(self) -> dict[str, Any]:
        return {
            "success": True,
            "received": self.received,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": len(self.rejected),
            "suppressed": self.suppressed,
            "errors": [r.as_dict() for r in sorted(self.rejected, key=lambda r: r.index)],
            "clamped": sorted(self.clamped),
        }


def _lock_key(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=4).digest(), "big", signed=True)


def _lock(lock_class: int, keys: set[int]) -> None:
    """Transaction-scoped advisory locks, taken in sorted order (no deadlock between batches)."""
    with raw_cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(%b, k)) FROM unnest(%b::int4[]) AS k",
            [lock_class, sorted(keys)],
        )


def source_lock_for_events(source_id: uuid.UUID) -> None:
    """The insert half of `Event.source`'s foreign key, once per batch: the source row is
    locked (FOR KEY SHARE) until the transaction ends, so a DELETE of the source waits for the
    batch and its trigger then sees the batch's events. A source deleted since the request
    was authenticated is an unknown write key."""
    with raw_cursor() as cursor:
        cursor.execute("SELECT 1 FROM ingest_source WHERE id = %b FOR KEY SHARE", [source_id])
        if cursor.fetchone() is None:
            raise RequestError(401, "invalid_write_key", "the write key is not valid")


def customers_lock_for_events(customer_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    """The insert half of `Event.customer`'s key, once per batch, for writers other than the
    tracking pipeline (whose consent read takes the same locks): the customers are locked FOR
    KEY SHARE until the transaction ends, in id order (erasure's order). Returns the ids that
    exist; events of the others (erased meanwhile) must not be written."""
    ids = sorted(set(customer_ids))
    if not ids:
        return set()
    with raw_cursor() as cursor:
        cursor.execute(
            "SELECT c.id FROM unnest(%b::uuid[]) AS u(id) CROSS JOIN LATERAL ("
            "SELECT id FROM profiles_customer WHERE id = u.id FOR KEY SHARE) AS c",
            [ids],
        )
        return {row[0] for row in cursor.fetchall()}


# One probe of the (source, messageId) index per message id. `message_id = ANY(array)` let the
# planner choose a scan of all the source's rows with the ids as a filter whenever it thought
# the source small (a new source, statistics older than its growth): the check then read every
# event of the source, for every batch (25 ms per batch at 60,000 events and growing).
_STORED = """
SELECT m.id FROM unnest(%b::varchar[]) AS m(id)
CROSS JOIN LATERAL (
    SELECT 1 FROM ingest_event WHERE source_id = %b AND message_id = m.id LIMIT 1
) AS e
"""


def _stored_message_ids(source_id: uuid.UUID, message_ids: list[str]) -> set[str]:
    """The message ids of `message_ids` already stored for the source."""
    with raw_cursor() as cursor:
        cursor.execute(_STORED, [message_ids, source_id])
        return {row[0] for row in cursor.fetchall()}


def _amount(properties: dict[str, Any]) -> Decimal | None:
    if not properties:
        return None
    for key in _AMOUNT_KEYS:
        value = properties.get(key)
        if value is None or value.__class__ is bool or not isinstance(value, _AMOUNT_TYPES):
            continue
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            continue
        if number.is_finite() and abs(number) < _AMOUNT_LIMIT:
            return number.quantize(_AMOUNT_QUANTUM)
    return None


def _text(value: Any, limit: int) -> str:
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)[:limit]
    return ""


def _payload_bytes(raw: dict[str, Any]) -> bytes:
    """The original message as JSON (what Event.payload decrypts to), serialised by orjson;
    the field's own serialiser for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(raw)
    except orjson.JSONEncodeError:
        return _PAYLOAD.to_bytes(raw)


_PAYLOAD = Event._meta.get_field("payload")

# The batch's constant columns (source, receive time) are single parameters; the rest arrive
# as one array per column (server-side binding: no quoting of thousands of values).
_INSERT = """
INSERT INTO ingest_event (id, source_id, message_id, customer_id, type, name, "timestamp",
    original_timestamp, sent_at, received_at, clamped, amount, currency, product_id, properties,
    payload)
SELECT r.id, %b::uuid, r.message_id, r.customer_id, r.type, r.name, r.ts, r.original_ts,
    r.sent_at, %b::timestamptz, r.clamped, r.amount, r.currency, r.product_id, r.properties,
    r.payload
FROM unnest(%b::uuid[], %b::varchar[], %b::uuid[], %b::varchar[], %b::varchar[],
    %b::timestamptz[], %b::timestamptz[], %b::timestamptz[], %b::boolean[], %b::numeric[],
    %b::varchar[], %b::varchar[], %b::jsonb[], %b::bytea[])
    AS r(id, message_id, customer_id, type, name, ts, original_ts, sent_at, clamped, amount,
         currency, product_id, properties, payload)
ON CONFLICT (source_id, message_id) DO NOTHING
RETURNING message_id
"""


def _event_rows(
    messages: Sequence[Message],
    customer_of: dict[int, uuid.UUID],
    source: Source,
    received_at: dt.datetime,
    table: Classes,
    keys: dict[uuid.UUID, DataKey],
) -> list[tuple[Any, ...]]:
    """The batch's `ingest_event` rows, in `_COPY_COLUMNS` order (ids as their 16 bytes,
    properties as a dict), sealed under the customers' data keys (`subject_keys_held`)."""
    rows = []
    source_id = source.id.bytes
    count = len(messages)
    where = _PAYLOAD.where
    seal = aead.seal_with_nonce
    for message, row_id, nonce in zip(
        messages, time_ordered_ids(count), aead.nonces(count), strict=True
    ):
        key = keys[customer_of[message.index]]
        properties = message.properties
        currency = properties.get("currency")
        product = properties.get("product_id", properties.get("sku"))
        aad = (key._prefixes.get(where) or key.aad_prefix(where)) + row_id
        rows.append(
            (
                row_id,
                source_id,
                message.message_id,
                key.subject,  # the customer id's 16 bytes
                message.type,
                message.name,
                message.timestamp,
                message.original_timestamp,
                message.sent_at,
                received_at,
                message.clamped,
                _amount(properties) if properties else None,
                currency.upper()[:3] if isinstance(currency, str) else "",
                _text(product, 255),
                non_personal_properties(properties, table) if properties else {},
                seal(key.cipher, key.header, nonce, _payload_bytes(message.raw), aad),
            )
        )
    return rows


_COPY_COLUMNS = (
    "id",
    "source_id",
    "message_id",
    "customer_id",
    "type",
    "name",
    '"timestamp"',
    "original_timestamp",
    "sent_at",
    "received_at",
    "clamped",
    "amount",
    "currency",
    "product_id",
    "properties",
    "payload",
)
_COPY_TYPES = [
    "uuid",
    "uuid",
    "text",
    "uuid",
    "text",
    "text",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "bool",
    "numeric",
    "text",
    "text",
    "jsonb",
    "bytea",
]
_EVENT_UNIQUE = "event_unique_message"


class _Mode(enum.Enum):
    """How a batch meets stored message ids.

    OPTIMISTIC, first: no message locks and no duplicate check; the rows go in by COPY, and the
    unique (source, messageId) index turns a stored or concurrently stored message id into a
    conflict that aborts the batch. Fresh messages (nearly every batch) cost nothing more.
    CHECKED, after such a conflict: the message ids are locked and the stored ones counted as
    duplicates before anything is written, so a replay changes nothing. INSERT, when a writer
    that takes no message lock (an import) stored a message id meanwhile: INSERT ... ON
    CONFLICT DO NOTHING counts such rows as duplicates.
    """

    OPTIMISTIC = "optimistic"
    CHECKED = "checked"
    INSERT = "insert"


class _EventConflict(Exception):
    """A row of the COPY met a stored (source, messageId), or deadlocked with a batch storing
    the same message ids in another order: the batch is done again in the next mode."""


def _copy_events(rows: list[tuple[Any, ...]]) -> set[str]:
    """The rows by binary COPY: no per-row conflict arbitration in the server and no Python
    array building here. A conflicting row aborts the COPY with `_EventConflict`: checked
    rows can only meet another writer's (an import into the same source), optimistic ones any
    stored or racing message id."""
    import psycopg

    try:
        copy_binary("ingest_event", _COPY_COLUMNS, _COPY_TYPES, rows)
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.constraint_name == _EVENT_UNIQUE:
            raise _EventConflict from None
        raise
    except psycopg.errors.DeadlockDetected:
        # Two batches storing shared message ids in different orders, each waiting on the
        # other's row (one at least optimistic): the one the server aborted goes again.
        raise _EventConflict from None
    return {row[2] for row in rows}


def _insert_events(rows: list[tuple[Any, ...]]) -> set[str]:
    """One INSERT ... ON CONFLICT DO NOTHING for the batch; returns the message ids actually
    inserted (a conflict is a duplicate that raced past the check)."""
    columns: list[list[Any]] = [[] for _ in range(14)]
    source_id = received_at = None
    for row in rows:
        source_id, received_at = uuid.UUID(bytes=row[1]), row[9]
        values = (
            uuid.UUID(bytes=row[0]),
            row[2],
            uuid.UUID(bytes=row[3]),
            *row[4:9],
            *row[10:14],
            _json_text(row[14]),
            row[15],
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    with raw_cursor() as cursor:
        cursor.execute(_INSERT, [source_id, received_at, *columns])
        return {row[0] for row in cursor.fetchall()}


def _json_text(value: dict[str, Any]) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False)


def events_ingest(
    *,
    source: Source,
    messages: Sequence[Message],
    rejections: Sequence[Rejection],
    received_at: dt.datetime,
    gpc: bool = False,
    user_agent: str | None = None,
) -> IngestResult:
    """Store a request's valid messages; returns the counts the client gets back.

    Everything is written in one transaction, so a 200 means every accepted message is
    committed. Replays of a message (same source and messageId) change nothing, also when they
    race: the message ids are locked before the duplicate check. The touched customer ids are
    enqueued after commit, so the request never waits for the worker.
    """

    def run(mode: _Mode) -> IngestResult:
        return _events_ingest(
            source=source,
            messages=messages,
            rejections=rejections,
            received_at=received_at,
            gpc=gpc,
            user_agent=user_agent,
            mode=mode,
        )

    try:
        return run(_Mode.OPTIMISTIC)
    except _EventConflict:
        # A message id of the batch is stored already, or was stored meanwhile (a client's
        # retry, a replay racing its original). Everything was rolled back; do it again under
        # the message locks with the duplicate check, so that a replay changes nothing.
        pass
    try:
        return run(_Mode.CHECKED)
    except _EventConflict:
        # Another writer stored one of the batch's message ids meanwhile (not a tracking
        # replay: those wait on the message locks). Everything was rolled back; do it again
        # with the INSERT that counts such rows as duplicates.
        return run(_Mode.INSERT)


def _events_ingest(
    *,
    source: Source,
    messages: Sequence[Message],
    rejections: Sequence[Rejection],
    received_at: dt.datetime,
    gpc: bool = False,
    user_agent: str | None = None,
    mode: _Mode = _Mode.CHECKED,
) -> IngestResult:
    """`events_ingest` in one of its three modes (`_Mode`)."""
    result = IngestResult(received=len(messages) + len(rejections), rejected=list(rejections))
    actor = actor_for_source(source.id)
    blocked = blocked_values()
    table = classes()

    seen: set[str] = set()
    unique: list[Message] = []
    for message in messages:
        if message.message_id in seen:
            result.duplicate += 1
        else:
            seen.add(message.message_id)
            unique.append(message)

    claims: dict[int, Claim] = {}
    kept: list[Message] = []
    identifiers = BatchIdentifiers(blocked)
    for message in unique:
        claim = identity_claim(message, identifiers)
        if not claim.idents:
            result.rejected.append(
                Rejection(
                    message.index,
                    "blocked_identifier",
                    "userId and anonymousId are placeholder values that identify nobody",
                )
            )
            continue
        claims[message.index] = claim
        kept.append(message)

    touched: set[uuid.UUID] = set()
    with transaction.atomic():
        source_lock_for_events(source.id)
        fresh = kept
        if mode is not _Mode.OPTIMISTIC:
            source_bytes = source.id.bytes
            # Replays of a message run one after the other, so the second sees the first's row.
            _lock(_MESSAGE_LOCKS, {_lock_key(source_bytes + m.message_id.encode()) for m in kept})
            existing = _stored_message_ids(source.id, [m.message_id for m in kept])
            fresh = [m for m in kept if m.message_id not in existing]
            result.duplicate += len(kept) - len(fresh)

        suppressed = suppressed_indexes(
            i.index for m in fresh for i in (*claims[m.index].idents, *claims[m.index].previous)
        )
        if suppressed:
            live = [
                m
                for m in fresh
                if not any(
                    i.index in suppressed
                    for i in (*claims[m.index].idents, *claims[m.index].previous)
                )
            ]
            result.suppressed += len(fresh) - len(live)
            fresh = live
        if not fresh:
            return result

        fresh_claims = [claims[m.index] for m in fresh]
        plan = resolution_plan(fresh_claims)
        if plan.new_identities or plan.merges:
            # Only batches that create identities or merge profiles serialise, on exactly the
            # identifiers and profiles involved; then the plan is made again under the locks,
            # from what a racing batch may have committed meanwhile. Batches of known customers
            # (the steady state) take no identity lock at all.
            keys = {_lock_key(ident.index) for ident, _ in plan.new_identities}
            keys |= {_lock_key(cid.bytes) for m in plan.merges for cid in (m.loser, m.survivor)}
            _lock(_IDENTITY_LOCKS, keys)
            plan = resolution_plan(fresh_claims)
        updates: dict[uuid.UUID, dict[str, Any]] = {}
        for message in fresh:
            if message.type == "identify" and message.traits:
                profile_update_merge(
                    updates.setdefault(plan.customer_of[message.index], {}),
                    profile_update(message.traits, table, claims[message.index]),
                )
        customers_create_many(
            {
                cid: {"country": country, **profile_initial_fields(updates.pop(cid, None))}
                for cid, country in plan.new_customers.items()
            },
            plan.new_identities,
        )
        merges = merges_apply(plan.merges, actor=actor)
        if merges:
            merges_respect_consent(merges, actor=actor)
        customer_of = plan.customer_of
        if merges:
            into = {m.from_customer_id: m.into_customer_id for m in merges}
            customer_of = {key: into.get(cid, cid) for key, cid in customer_of.items()}
        touched = set(customer_of.values())
        # Every data key the batch needs (profile updates, payloads), in one query for those
        # this worker does not hold yet.
        keys = subject_keys_held(touched)
        profile_updates_apply(updates)
        # One read of the customers' status, jurisdiction and consent states serves both the
        # consent carried in the messages and the analytics decision below.
        held = batch_consent_read(touched)
        result.consent_errors = consent_from_messages(
            fresh,
            customer_of,
            source=source,
            actor=actor,
            gpc=gpc,
            user_agent=user_agent,
            received_at=received_at,
            held=held,
        )
        allowed = customers_allowed(ANALYTICS_PURPOSE, held)
        storable = [m for m in fresh if customer_of[m.index] in allowed]
        result.suppressed += len(fresh) - len(storable)
        rows = (
            _event_rows(storable, customer_of, source, received_at, table, keys) if storable else []
        )
        if not rows:
            inserted: set[str] = set()
        elif mode is not _Mode.INSERT:
            inserted = _copy_events(rows)
        else:
            inserted = _insert_events(rows)
        result.accepted = len(inserted)
        result.duplicate += len(storable) - len(inserted)
        result.clamped = [m.index for m in storable if m.clamped and m.message_id in inserted]
        if plan.new_customers or merges:
            audit_record(
                actor=actor,
                action="ingest.profiles",
                object_type="ingest.source",
                object_id=str(source.id),
                details={
                    "customers_created": len(plan.new_customers),
                    "identities_linked": len(plan.new_identities),
                    "merges": [str(m.id) for m in merges],
                    "links_refused": plan.refused_links,
                    "merges_refused": plan.refused_merges,
                },
            )
        ids = sorted(str(c) for c in touched)
        transaction.on_commit(lambda: _enqueue_touched(ids), robust=True)
    return result


def _enqueue_touched(ids: list[str]) -> None:
    from cdp.ingest.tasks import customers_touched

    for start in range(0, len(ids), TASK_CHUNK):
        chunk = ids[start : start + TASK_CHUNK]
        # A short argsrepr: Celery would otherwise build a repr of up to a thousand ids for its
        # logs and monitoring on every batch.
        customers_touched.apply_async((chunk,), argsrepr=f"({len(chunk)} customer ids)")
