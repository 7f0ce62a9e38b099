"""Erasure: delete or detach every row of the subject, shred its data keys, suppress its
identifiers, scan for residue and certify the result. Also the journal replay after a restore.

`erase_customers` is the core shared by a request (`dsr_execute_erasure`) and
`replay_erasures`. Rows of models with a foreign key to the customer are deleted unless their
app declared ANONYMISE or RETAIN (`cdp.crypto.registry.erasure_policy`); then Customer rows go
(Django's collector fast-deletes what cascades), registered blind-index columns outside those
models are cleared, data keys are destroyed (so backups and append-only copies can no longer
be read), suppression entries are written and the consent withdrawal hooks are scheduled.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.db import DEFAULT_DB_ALIAS, connection, models, transaction
from django.db.models import signals
from django.db.models.deletion import Collector
from django.utils import timezone

from cdp.audit.services import SYSTEM, audit_record
from cdp.crypto.fields import EncryptedField
from cdp.crypto.registry import ErasureAction, erasure_policy_of, erasure_scrubbers
from cdp.crypto.subject_keys import subject_keys_shred
from cdp.ingest.models import Suppression
from cdp.privacy.models import (
    DataSubjectRequest,
    ErasureCertificate,
    ErasureJournal,
    ExportPackage,
    RequestStatus,
    Verification,
)
from cdp.privacy.recipients import notices_create
from cdp.privacy.subjects import (
    Relation,
    blind_index_columns,
    residue_scan,
    subject_lookup,
    subject_relations,
)
from cdp.profiles.models import Customer, IdentityKind

SUPPRESSIBLE = {k.value for k in IdentityKind}


@dataclass
class ErasureOutcome:
    deleted: Counter[str] = field(default_factory=Counter)
    kept: list[dict[str, Any]] = field(default_factory=list)
    keys_shredded: int = 0
    suppressions: int = 0


def _detach(relation: Any, ids: list[uuid.UUID], outcome: ErasureOutcome) -> None:
    """ANONYMISE / RETAIN: keep the rows, cut them from the subject, overwrite what was named."""
    model, fk = relation.model, relation.field
    policy = erasure_policy_of(model)
    if not fk.null:
        raise RuntimeError(
            f"{model._meta.label}.{fk.name} must be nullable for erasure policy {policy.action}"
        )
    changes: dict[str, Any] = {fk.name: None}
    for f in model._meta.concrete_fields:
        if isinstance(f, EncryptedField) and f.null:
            changes[f.name] = None
    changes.update(dict(policy.anonymise))
    rows = model._base_manager.filter(**{f"{fk.name}__in": ids}).update(**changes)
    if rows:
        entry = {"table": model._meta.db_table, "model": model._meta.label, "rows": rows}
        if policy.action == ErasureAction.RETAIN:
            entry.update(action="retained", reason=policy.reason, basis=policy.basis)
        else:
            entry.update(action="anonymised", fields=sorted(changes))
        outcome.kept.append(entry)


@dataclass(frozen=True)
class _Plan:
    """The erasure's statements, compiled once per process from the model graph and sent in one
    pipeline (one round trip): a DELETE per relation, the customers last, then the admin
    history and the subject's stored exports. `counts` names the model label whose deleted
    rows each statement counts ("" for updates). Relations Django's collector must handle
    (delete signals, rows that other rows depend on) are in `collected` and deleted through
    the ORM first; when the customers themselves need the collector, `customers_collected`
    says so."""

    statements: tuple[str, ...]
    counts: tuple[str, ...]
    collected: tuple[Relation, ...]
    blind_collected: tuple[tuple[type[models.Model], str], ...]
    customers_collected: bool


def _fast(model: type[models.Model]) -> bool:
    return Collector(using=DEFAULT_DB_ALIAS).can_fast_delete(model)


def _customers_fast(relations: list[Relation]) -> bool:
    """Can the customers be deleted with a plain DELETE? Every relation to them must already be
    handled (deleted or detached above) or be a self reference that is set to NULL."""
    if any(s.has_listeners(Customer) for s in (signals.pre_delete, signals.post_delete)):
        return False
    handled = {(r.model, r.field.name) for r in relations}
    for rel in Customer._meta.related_objects:
        if (rel.related_model, rel.field.name) in handled:
            continue
        if rel.related_model is Customer and rel.on_delete in (models.SET_NULL, models.DO_NOTHING):
            continue
        return False
    return True


def _plan(relations: tuple[Relation, ...]) -> _Plan:
    cached = _plans.get(relations)
    if cached is not None:
        return cached
    # Table and column names come from the model registry and are quoted; values are bound.
    q = connection.ops.quote_name
    statements: list[str] = []
    counts: list[str] = []
    collected: list[Relation] = []
    blind_collected: list[tuple[type[models.Model], str]] = []

    def add(sql: str, label: str | None = None) -> None:
        statements.append(sql)
        counts.append(label or "")

    for relation in relations:
        if erasure_policy_of(relation.model).action != ErasureAction.DELETE:
            continue
        if not _fast(relation.model):
            collected.append(relation)
            continue
        table, column = q(relation.model._meta.db_table), q(relation.field.column)
        add(f"DELETE FROM {table} WHERE {column} = ANY(%(ids)s::uuid[])", relation.label)  # noqa: S608
    for model, name in blind_index_columns():
        if erasure_policy_of(model).action != ErasureAction.DELETE:
            continue
        if not _fast(model):
            blind_collected.append((model, name))
            continue
        table, column = q(model._meta.db_table), q(model._meta.get_field(name).column)
        add(f"DELETE FROM {table} WHERE {column} = ANY(%(blobs)s::bytea[])", model._meta.label)  # noqa: S608
    customers_collected = not _customers_fast(list(relations))
    if not customers_collected:
        table, pk = q(Customer._meta.db_table), q(Customer._meta.pk.column)
        for rel in Customer._meta.related_objects:
            if rel.related_model is Customer and rel.on_delete is models.SET_NULL:
                column = q(rel.field.column)
                add(
                    f"UPDATE {table} SET {column} = NULL WHERE {column} = ANY(%(ids)s::uuid[]) "  # noqa: S608
                    f"AND NOT {pk} = ANY(%(ids)s::uuid[])"
                )
        delete = f"DELETE FROM {table} WHERE {pk} = ANY(%(ids)s::uuid[])"  # noqa: S608
        add(delete, Customer._meta.label)
    # Admin history of the profiles; stored exports and free text of the subject's requests.
    add(
        f"DELETE FROM {q(LogEntry._meta.db_table)} WHERE object_id = ANY(%(texts)s::text[])",  # noqa: S608
        LogEntry._meta.label,
    )
    requests = (
        f"SELECT id FROM {q(DataSubjectRequest._meta.db_table)} "  # noqa: S608
        "WHERE customer_id = ANY(%(ids)s::uuid[])"
    )
    add(
        f"DELETE FROM {q(ExportPackage._meta.db_table)} WHERE request_id IN ({requests})",  # noqa: S608
        ExportPackage._meta.label,
    )
    add(
        f"UPDATE {q(Verification._meta.db_table)} SET evidence_note = NULL "  # noqa: S608
        f"WHERE request_id IN ({requests}) AND evidence_note IS NOT NULL"
    )
    add(
        f"UPDATE {q(DataSubjectRequest._meta.db_table)} SET changes = NULL "  # noqa: S608
        "WHERE customer_id = ANY(%(ids)s::uuid[]) AND changes IS NOT NULL"
    )
    plan = _Plan(
        statements=tuple(statements),
        counts=tuple(counts),
        collected=tuple(collected),
        blind_collected=tuple(blind_collected),
        customers_collected=customers_collected,
    )
    _plans[relations] = plan
    return plan


_plans: dict[tuple[Relation, ...], _Plan] = {}


def erase_customers(
    customer_ids: Iterable[uuid.UUID],
    identifiers: Iterable[tuple[str, bytes]],
    *,
    suppress: bool,
) -> ErasureOutcome:
    """Erase the customers (call inside a transaction). Safe to run again: a second run finds
    nothing to delete and the suppression insert ignores duplicates.

    The deletions are one statement (`_Plan`): an erasure holds locks and a connection for as
    long as it runs, and a round trip per table would be most of its time."""
    from cdp.db import raw_cursor

    ids = sorted(set(customer_ids))
    indexes = {(k, bytes(v)) for k, v in identifiers}
    blobs = [v for _, v in indexes]
    outcome = ErasureOutcome()
    if ids:
        # Events carry no per-row foreign key (see `Event.customer`): a batch storing events
        # holds its customers FOR KEY SHARE. Locking them first (in id order, as batches do)
        # makes the erasure wait for such a batch, whose events the deletes below then see, and
        # makes a later batch wait for the erasure and find the customers gone.
        with raw_cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM (SELECT 1 FROM profiles_customer "
                "WHERE id = ANY(%b::uuid[]) ORDER BY id FOR UPDATE) AS locked",
                [ids],
            )
    relations = tuple(subject_relations())
    for relation in relations:
        policy = erasure_policy_of(relation.model)
        if policy.action in (ErasureAction.ANONYMISE, ErasureAction.RETAIN):
            _detach(relation, ids, outcome)
    plan = _plan(relations)

    def collect(qs: models.QuerySet) -> None:
        _, per_model = qs.delete()
        outcome.deleted.update({k: v for k, v in per_model.items() if v})

    for relation in plan.collected:
        collect(relation.model._base_manager.filter(**{f"{relation.field.name}__in": ids}))
    if blobs:
        for model, name in plan.blind_collected:
            collect(model._base_manager.filter(**{f"{name}__in": blobs}))
    if plan.customers_collected:
        collect(Customer._base_manager.filter(id__in=ids))
    if ids or blobs:
        params = {"ids": ids, "blobs": blobs, "texts": [str(i) for i in ids]}
        cursors = []
        with connection.connection.pipeline():
            for sql in plan.statements:
                cursor = raw_cursor()
                cursor.execute(sql, params)
                cursors.append(cursor)
        for label, cursor in zip(plan.counts, cursors, strict=True):
            if label and cursor.rowcount > 0:
                outcome.deleted[label] += cursor.rowcount
            cursor.close()
    for scrubber in erasure_scrubbers():
        changed = scrubber.scrub(ids)
        if changed:
            outcome.deleted[scrubber.key] += changed
    outcome.keys_shredded = subject_keys_shred(ids)
    if suppress:
        outcome.suppressions = suppressions_add(
            [(kind, value) for kind, value in sorted(indexes) if kind in SUPPRESSIBLE],
            reason="erasure",
        )
    from consent.services import consent_customer_restricted

    for customer_id in ids:
        consent_customer_restricted(customer_id=customer_id)
    return outcome


def suppressions_add(pairs: list[tuple[str, bytes]], *, reason: str) -> int:
    """Add suppression entries (kind, blind index); returns how many were new. One statement
    that counts what it inserted, instead of counting a table that grows with every erasure."""
    if not pairs:
        return 0
    from cdp.db import raw_cursor

    table = Suppression._meta.db_table
    with raw_cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (kind, value_index, reason, created_at) "  # noqa: S608
            "SELECT k, v, %s, now() FROM unnest(%s::varchar[], %s::bytea[]) AS t(k, v) "
            "ON CONFLICT (kind, value_index) DO NOTHING",
            [reason, [k for k, _ in pairs], [v for _, v in pairs]],
        )
        return cursor.rowcount


def _certificate_signature(content: dict[str, Any]) -> str:
    body = json.dumps(content, sort_keys=True, default=str).encode()
    key = hmac.new(settings.CDP_AUDIT_KEY, b"cdp-erasure-certificate|v1", hashlib.sha256).digest()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def certificate_verify(certificate: ErasureCertificate) -> bool:
    """Does the certificate still carry the signature of its content (not edited since)?"""
    expected = _certificate_signature(_certificate_content(certificate))
    return hmac.compare_digest(expected, certificate.signature)


def _certificate_content(cert: ErasureCertificate) -> dict[str, Any]:
    return {
        "request": str(cert.request_id),
        "deleted": cert.deleted,
        "kept": cert.kept,
        "scan": cert.scan,
        "clean": cert.clean,
        "keys_shredded": cert.keys_shredded,
        "suppressions": cert.suppressions,
    }


def dsr_execute_erasure(*, request: DataSubjectRequest, actor: str) -> ErasureCertificate:
    """Erase the request's subject, scan for residue and issue the certificate, in one
    transaction (the scan sees the deletions; a failure leaves everything as it was).

    The scan is targeted (`residue_scan` with CDP_RESIDUE_SCAN_FULL_MAX_ROWS): indexes answer
    for large tables, small tables are read in full, and the columns of large tables that only a
    full read could search are left to the residue sweep (`cdp.privacy.sweep`), which the
    certificate states (`scan.deferred`, `sweep_due`) and which may still fail the request.
    The request completes when the scan is clean, and fails (certificate kept) when residue is
    found outside the declared exceptions. An unknown subject completes with a report saying so;
    its identifier is still suppressed when the request asks for suppression.
    """
    with transaction.atomic():
        request = DataSubjectRequest.objects.select_for_update().get(pk=request.pk)
        existing = ErasureCertificate.objects.filter(request=request).first()
        if existing is not None:
            return existing
        ids, identifiers = (
            subject_lookup(request.customer_id) if request.customer_id else ([], set())
        )
        found = bool(ids)
        if request.subject_index and request.subject_kind in SUPPRESSIBLE:
            identifiers.add((request.subject_kind, bytes(request.subject_index)))
        outcome = erase_customers(ids, identifiers, suppress=request.suppress)
        scan_ids = ids or ([request.customer_id] if request.customer_id else [])
        scan = residue_scan(
            scan_ids,
            [v for _, v in identifiers],
            full_read_max_rows=settings.CDP_RESIDUE_SCAN_FULL_MAX_ROWS,
        )
        ErasureJournal.objects.create(
            request=request,
            customer_ids=ids,
            identifiers=sorted([k, v.hex()] for k, v in identifiers),
            suppress=request.suppress,
        )
        cert = ErasureCertificate(
            request=request,
            deleted=dict(sorted(outcome.deleted.items())),
            kept=outcome.kept,
            scan=scan.as_dict(),
            clean=scan.clean,
            keys_shredded=outcome.keys_shredded,
            suppressions=outcome.suppressions,
            sweep_due=bool(scan.deferred),
        )
        cert.signature = _certificate_signature(_certificate_content(cert))
        cert.save(force_insert=True)
        # Art. 19 / CCPA: recipients are told of the erasure (after the scan, so the notices'
        # pseudonymous ids are not residue); the subject may ask who was told.
        notified = notices_create(request=request, kind="erasure", customer_ids=ids)
        now = timezone.now()
        request.status = RequestStatus.COMPLETED if scan.clean else RequestStatus.FAILED
        request.completed_at = now
        request.subject_found = found
        request.report = {
            "subject_found": found,
            "customers_erased": len(ids),
            "rows_deleted": sum(outcome.deleted.values()),
            "certificate": str(cert.id),
            "scan_clean": scan.clean,
            **({"sweep": "pending"} if scan.deferred else {}),
            "recipients_notified": notified,
            **({} if found else {"message": "the platform holds no data on this subject"}),
        }
        request.save(update_fields=["status", "completed_at", "subject_found", "report"])
        audit_record(
            actor=actor,
            action="privacy.erasure",
            object_type="privacy.request",
            object_id=str(request.id),
            details={
                "deleted": cert.deleted,
                "kept": [{"table": k["table"], "rows": k["rows"]} for k in cert.kept],
                "keys_shredded": cert.keys_shredded,
                "suppressions": cert.suppressions,
                "scan_clean": scan.clean,
                "residue_tables": sorted({r["table"] for r in scan.residue}),
                "certificate": str(cert.id),
            },
        )
    return cert


@dataclass
class ReplayReport:
    entries: int = 0
    customers_erased: int = 0
    rows_deleted: int = 0
    suppressions: int = 0


def _journal_identifiers(raw: list[list[str]]) -> set[tuple[str, bytes]]:
    return {(kind, bytes.fromhex(value)) for kind, value in raw}


def erasures_replay(
    *, entries: Iterable[dict[str, Any]] | None = None, actor: str = SYSTEM
) -> ReplayReport:
    """Re-apply journalled erasures (after a database restore): erase any customer that is
    back, by id or by one of the journalled identifiers, and restore the suppression entries.

    `entries` are journal rows as dicts (from an exported file); default: the journal table.
    Idempotent: a second run finds nothing left to erase.
    """
    from cdp.profiles.models import Identity

    report = ReplayReport()
    rows = (
        entries
        if entries is not None
        else ErasureJournal.objects.order_by("id").values("customer_ids", "identifiers", "suppress")
    )
    for entry in rows:
        identifiers = _journal_identifiers(entry["identifiers"])
        with transaction.atomic():
            ids = {uuid.UUID(str(i)) for i in entry["customer_ids"]}
            for kind, value in identifiers:
                ids.update(
                    Identity.objects.filter(kind=kind, value_index=value).values_list(
                        "customer_id", flat=True
                    )
                )
            every, found = subject_lookup(*ids)
            outcome = erase_customers(every, identifiers | found, suppress=entry["suppress"])
            report.entries += 1
            report.customers_erased += len(every)
            report.rows_deleted += sum(outcome.deleted.values())
            report.suppressions += outcome.suppressions
            if every or outcome.suppressions:
                audit_record(
                    actor=actor,
                    action="privacy.erasure_replay",
                    object_type="privacy.erasurejournal",
                    details={
                        "customers_erased": len(every),
                        "deleted": dict(outcome.deleted),
                        "suppressions": outcome.suppressions,
                    },
                )
    if entries is None:
        ErasureJournal.objects.filter(replayed_at__isnull=True).update(replayed_at=timezone.now())
    return report


def erasure_journal_export() -> list[dict[str, Any]]:
    """The journal as plain JSON-ready dicts, to keep outside the database it protects."""
    return [
        {
            "id": row["id"],
            "created_at": row["created_at"].isoformat(),
            "customer_ids": [str(i) for i in row["customer_ids"]],
            "identifiers": row["identifiers"],
            "suppress": row["suppress"],
        }
        for row in ErasureJournal.objects.order_by("id").values(
            "id", "created_at", "customer_ids", "identifiers", "suppress"
        )
    ]
