"""Writing one chunk of clean rows, set-based, inside the caller's transaction.

Profiles: duplicates (a row already imported from this source) -> suppressed identifiers ->
identity resolution for the chunk -> new profiles and identities in bulk -> merges -> field
updates with survivorship -> one SourceRecord per row -> consent columns as ledger entries.
Transactions: duplicates (the Event's (source, message_id)) -> identity resolution (anonymous
invoices included) -> new profiles -> one INSERT of events.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cdp.crypto.subject_keys import subject_keys_load
from cdp.db import raw_cursor
from cdp.ingest.imports.bulk import (
    customers_copy,
    customers_update,
    identities_copy,
    source_records_copy,
)
from cdp.ingest.imports.resolve import ImportPlan, RowClaim, import_resolution_plan
from cdp.ingest.imports.rows import ProfileRow, RowError, TransactionRow, is_non_product
from cdp.ingest.models import Event, ImportJob, Source
from cdp.ingest.pipeline import customers_lock_for_events
from cdp.ingest.selectors import suppressed_indexes
from cdp.profiles.jurisdiction import jurisdiction_for
from cdp.profiles.models import Customer, CustomerStatus
from cdp.profiles.resolution import merges_apply

PROFILE_VALUE_FIELDS = ("email", "phone", "first_name", "last_name", "birth_date")


@dataclass
class ChunkResult:
    created: int = 0
    updated: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[RowError] = field(default_factory=list)
    touched: set[uuid.UUID] = field(default_factory=set)
    stats: dict[str, int] = field(default_factory=dict)
    merges: list[str] = field(default_factory=list)

    def count(self, name: str, n: int = 1) -> None:
        self.stats[name] = self.stats.get(name, 0) + n


def _reject(result: ChunkResult, number: int, code: str, reason: str, column: str = "") -> None:
    result.rejected += 1
    result.errors.append(RowError(number, column, code, reason))


def _suppressed(claims: Sequence[RowClaim]) -> set[int]:
    hits = suppressed_indexes(ri.ident.index for c in claims for ri in c.idents)
    return {c.key for c in claims if any(ri.ident.index in hits for ri in c.idents)}


def _apply_plan(plan: ImportPlan, actor: str) -> dict[uuid.UUID, uuid.UUID]:
    """Identities and merges of the plan; returns loser -> survivor for the merges done."""
    identities_copy(
        [
            (ri.ident.kind, ri.namespace, ri.ident.normalized, ri.ident.index, cid)
            for ri, cid in plan.new_identities
        ]
    )
    done = merges_apply(plan.merges, actor=actor)
    return {m.from_customer_id: m.into_customer_id for m in done}


def _higher_priority_holders(
    customer_ids: Sequence[uuid.UUID], source_names: Sequence[str]
) -> set[uuid.UUID]:
    if not customer_ids or not source_names:
        return set()
    with raw_cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT customer_id FROM profiles_sourcerecord "
            "WHERE customer_id = ANY(%b::uuid[]) AND source_name = ANY(%b::varchar[])",
            [list(customer_ids), list(source_names)],
        )
        return {row[0] for row in cursor.fetchall()}


def profiles_chunk(
    rows: Sequence[ProfileRow],
    *,
    job: ImportJob,
    rules: Sequence[str],
    higher_sources: Sequence[str],
    actor: str,
    result: ChunkResult,
) -> None:
    source_name = job.source.name
    # 1. Duplicates: in the chunk, then rows this source already imported.
    unique: dict[bytes, ProfileRow] = {}
    for row in rows:
        if row.row_index in unique:
            result.duplicates += 1
        else:
            unique[row.row_index] = row
    with raw_cursor() as cursor:
        cursor.execute(
            "SELECT row_index FROM profiles_sourcerecord WHERE source_name = %b "
            "AND row_index = ANY(%b::bytea[])",
            [source_name, list(unique)],
        )
        seen = {bytes(r[0]) for r in cursor.fetchall()}
    fresh = [row for index, row in unique.items() if index not in seen]
    result.duplicates += len(unique) - len(fresh)
    # 2. Identifiers of erased subjects.
    suppressed = _suppressed([r.claim for r in fresh])
    for row in fresh:
        if row.number in suppressed:
            _reject(result, row.number, "suppressed", "an identifier belongs to an erased subject")
    fresh = [r for r in fresh if r.number not in suppressed]
    if not fresh:
        return
    # 3. Resolution.
    plan = import_resolution_plan([r.claim for r in fresh], source_name=source_name, rules=rules)
    for row in fresh:
        if row.number in plan.blocked_rows:
            _reject(result, row.number, "restricted", plan.blocked_rows[row.number])
    fresh = [r for r in fresh if r.number not in plan.blocked_rows]
    # 4. Values per profile, in file order: the latest non-empty value wins.
    values: dict[uuid.UUID, dict[str, Any]] = {}
    for row in fresh:
        cid = plan.customer_of[row.number]
        target = values.setdefault(cid, {"traits": {}, "attributes": {}})
        for name, value in row.fields.items():
            if value not in (None, ""):
                target[name] = value
        if row.country:
            target["country"] = row.country
        target["traits"].update(row.traits)
        target["attributes"].update(row.attributes)
    new = plan.new_customers
    initial = {}
    for cid, country in new.items():
        update = values.get(cid) or {}
        initial[cid] = {
            **update,
            "country": update.get("country") or country,
            "traits": update.get("traits") or None,
            "attributes": update.get("attributes") or {},
        }
    customers_copy(initial)
    redirect = _apply_plan(plan, actor)
    result.merges.extend(str(loser) for loser in redirect)
    result.count("merges", len(redirect))
    result.count("merges_refused", plan.refused_merges)
    result.count("profiles_created", len(new))

    def final(cid: uuid.UUID) -> uuid.UUID:
        while cid in redirect:
            cid = redirect[cid]
        return cid

    # 5. Updates of stored profiles, with survivorship.
    existing = {final(cid) for cid in values if cid not in new}
    protected = _higher_priority_holders(list(existing), higher_sources)
    updates: dict[uuid.UUID, dict[str, Any]] = {}
    for cid, update in values.items():
        if cid not in new:
            merged = updates.setdefault(final(cid), {"traits": {}, "attributes": {}})
            for key, value in update.items():
                if key in ("traits", "attributes"):
                    merged[key].update(value)
                else:
                    merged[key] = value
    if updates:
        changes: list[tuple[Customer, list[str]]] = []
        customers = Customer.objects.filter(id__in=list(updates)).order_by("id")
        for customer in customers.prefetch_subject_keys():
            update = updates[customer.id]
            fill_only = customer.id in protected
            changed: list[str] = []
            for name in (*PROFILE_VALUE_FIELDS, "country"):
                if name not in update:
                    continue
                current = getattr(customer, name)
                if current == update[name] or (fill_only and current not in (None, "")):
                    continue
                setattr(customer, name, update[name])
                changed.append(name)
                if name in ("email", "phone"):
                    setattr(customer, f"{name}_index", update[f"{name}_index"])
                    changed.append(f"{name}_index")
            for name in ("traits", "attributes"):
                current = dict(getattr(customer, name) or {})
                extra = {
                    k: v
                    for k, v in update[name].items()
                    if current.get(k) != v and not (fill_only and k in current)
                }
                if extra:
                    setattr(customer, name, {**current, **extra})
                    changed.append(name)
            if "country" in changed:
                customer.jurisdiction = jurisdiction_for(customer.country)
                changed.append("jurisdiction")
            if changed:
                changes.append((customer, changed))
        customers_update(changes)
    # 6. Counts and lineage.
    created_by_row: set[uuid.UUID] = set()
    records = []
    for row in fresh:
        cid = plan.customer_of[row.number]
        if plan.matched_by[row.number] is None and cid in new and cid not in created_by_row:
            result.created += 1
            created_by_row.add(cid)
        elif plan.matched_by[row.number] == "content":
            result.duplicates += 1
            result.count("duplicates_merged")
        else:
            result.updated += 1
        final_id = final(cid)
        result.touched.add(final_id)
        records.append(
            {
                "customer_id": final_id,
                "source_name": source_name,
                "job_id": job.id,
                "row_number": row.number,
                "row_index": row.row_index,
                "content_index": row.claim.content,
                "data": row.record,
            }
        )
    source_records_copy(records)
    # 7. Consent columns.
    _consents(fresh, plan, final, new, values, actor=actor, job=job, result=result)


def _consents(
    rows: Sequence[ProfileRow],
    plan: ImportPlan,
    final: Any,
    new: dict[uuid.UUID, str],
    values: dict[uuid.UUID, dict[str, Any]],
    *,
    actor: str,
    job: ImportJob,
    result: ChunkResult,
) -> None:
    wanted = [(final(plan.customer_of[r.number]), r) for r in rows if r.consents]
    if not wanted:
        return
    from consent.models import Channel
    from consent.services import ConsentDecision, consent_record_many

    customers = {
        c.id: c
        for c in Customer.objects.filter(id__in={cid for cid, _ in wanted}).only(
            "id", "status", "jurisdiction"
        )
    }
    decisions = []
    for cid, row in wanted:
        customer = customers.get(cid)
        if customer is None or customer.status != CustomerStatus.ACTIVE:
            continue
        for purpose, (granted, at) in sorted(row.consents.items()):
            decisions.append(
                ConsentDecision(
                    customer=customer,
                    purpose_code=purpose,
                    granted=granted,
                    channel=Channel.IMPORT,
                    method="csv_import",
                    at=at,
                    proof={"import_job": str(job.id), "row": row.number},
                )
            )
    decisions.sort(key=lambda d: d.at or dt.datetime.max.replace(tzinfo=dt.UTC))
    consent_record_many(decisions=decisions, actor=actor)
    result.count("consents_recorded", len(decisions))


class _Row:
    """What the payload field needs to seal a value: the subject and row ids."""

    def __init__(self, customer_id: uuid.UUID, row_id: uuid.UUID) -> None:
        self.customer_id = customer_id
        self.id = row_id


_INSERT = """
INSERT INTO ingest_event (id, source_id, message_id, customer_id, type, name, "timestamp",
    original_timestamp, sent_at, received_at, clamped, amount, currency, product_id, properties,
    payload)
SELECT id, source_id, message_id, customer_id, 'track', name, ts, NULL, NULL, %b, false, amount,
    currency, product_id, properties, payload
FROM unnest(%b::uuid[], %b::uuid[], %b::varchar[], %b::uuid[], %b::varchar[],
    %b::timestamptz[], %b::numeric[], %b::varchar[], %b::varchar[], %b::jsonb[], %b::bytea[])
    AS t(id, source_id, message_id, customer_id, name, ts, amount, currency, product_id,
         properties, payload)
ON CONFLICT (source_id, message_id) DO NOTHING
RETURNING message_id
"""


def transactions_chunk(
    rows: Sequence[TransactionRow],
    *,
    job: ImportJob,
    source: Source,
    rules: Sequence[str],
    actor: str,
    result: ChunkResult,
) -> None:
    unique: dict[str, TransactionRow] = {}
    for row in rows:
        if row.message_id in unique:
            result.duplicates += 1
        else:
            unique[row.message_id] = row
    with raw_cursor() as cursor:
        cursor.execute(
            "SELECT message_id FROM ingest_event WHERE source_id = %b "
            "AND message_id = ANY(%b::varchar[])",
            [source.id, list(unique)],
        )
        seen = {r[0] for r in cursor.fetchall()}
    fresh = [row for mid, row in unique.items() if mid not in seen]
    result.duplicates += len(unique) - len(fresh)
    suppressed = _suppressed([r.claim for r in fresh])
    for row in fresh:
        if row.number in suppressed:
            _reject(result, row.number, "suppressed", "an identifier belongs to an erased subject")
    fresh = [r for r in fresh if r.number not in suppressed]
    if not fresh:
        return
    plan = import_resolution_plan(
        [r.claim for r in fresh], source_name=source.name, rules=(*rules, "anonymous")
    )
    for row in fresh:
        if row.number in plan.blocked_rows:
            _reject(result, row.number, "restricted", plan.blocked_rows[row.number])
    fresh = [r for r in fresh if r.number not in plan.blocked_rows]
    customers_copy({cid: {"country": c} for cid, c in plan.new_customers.items()})
    redirect = _apply_plan(plan, actor)
    result.count("profiles_created", len(plan.new_customers))
    anonymous_new = {plan.customer_of[r.number] for r in fresh if r.anonymous} & set(
        plan.new_customers
    )
    result.count("anonymous_profiles_created", len(anonymous_new))
    result.count("merges", len(redirect))

    def final(cid: uuid.UUID) -> uuid.UUID:
        while cid in redirect:
            cid = redirect[cid]
        return cid

    payload_field = Event._meta.get_field("payload")
    customer_of = {r.number: final(plan.customer_of[r.number]) for r in fresh}
    # Events carry no per-row foreign key: lock the customers (erasure waits for this chunk, or
    # this chunk for an erasure that then leaves no customer to write for).
    live = customers_lock_for_events(customer_of.values())
    for row in fresh:
        if customer_of[row.number] not in live:
            _reject(result, row.number, "suppressed", "the profile was erased during the import")
    fresh = [r for r in fresh if customer_of[r.number] in live]
    subject_keys_load(set(customer_of.values()))
    columns: list[list[Any]] = [[] for _ in range(11)]
    job_id = str(job.id)
    for row in fresh:
        row_id = uuid.uuid4()
        cid = customer_of[row.number]
        refund = row.invoice.startswith("C") or row.quantity < 0
        properties = {
            "order_id": row.invoice,
            "quantity": row.quantity,
            "price": None if row.price is None else str(row.price),
            "non_product": is_non_product(row.product_id),
            "import_job": job_id,
        }
        if row.category:
            properties["category"] = row.category
        sealed = payload_field.seal(_Row(cid, row_id), {**row.record, "row": row.number})
        for column, value in zip(
            columns,
            (
                row_id,
                source.id,
                row.message_id,
                cid,
                "Order Refunded" if refund else "Order Completed",
                row.timestamp,
                row.amount,
                row.currency,
                row.product_id,
                json.dumps(properties),
                sealed.blob,
            ),
            strict=True,
        ):
            column.append(value)
    with raw_cursor() as cursor:
        cursor.execute(_INSERT, [dt.datetime.now(dt.UTC), *columns])
        inserted = {r[0] for r in cursor.fetchall()}
    for row in fresh:
        if row.message_id not in inserted:
            result.duplicates += 1
            continue
        result.created += 1
        result.touched.add(customer_of[row.number])
        if row.invoice.startswith("C") or row.quantity < 0:
            result.count("refund_lines")
        if row.anonymous:
            result.count("anonymous_lines")
        if is_non_product(row.product_id):
            result.count("non_product_lines")
