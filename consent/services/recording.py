"""Every consent decision goes through `_record`: validate, take the ledger's lock, append to
the ledger, update the state projection and write the audit entry in one transaction; withdrawals
then enqueue the withdrawal hooks after commit. Single decisions (`consent_record`) and batches
(`consent_record_many`, imports, expiry) share it, so they cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from cdp.audit.chain import advisory_lock, json_roundtrip
from cdp.audit.services import audit_record
from cdp.logging import redact
from cdp.profiles.models import Customer, CustomerStatus
from consent.errors import (
    CustomerInactive,
    InvalidDecision,
    NoticeVersionUnknown,
    PurposeUnknown,
)
from consent.ledger import LEDGER_CHAIN, ledger_append, proof_hash
from consent.models import (
    Channel,
    ConsentEvent,
    ConsentReason,
    ConsentState,
    Purpose,
    PurposeVersion,
)

METHOD_GPC = "gpc"
METHOD_OBJECTION = "objection"
METHOD_EXPIRY = "expiry"
METHOD_CATEGORY_PREFERENCES = "category_preferences"
METHOD_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
# Client clocks run ahead a little; a decision further in the future than this is refused.
CLOCK_SKEW = dt.timedelta(minutes=5)
HOOK_TASK_CHUNK = 500
_VERSIONED_FIELDS = ("title", "description", "notice_text")

# --- decisions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentDecision:
    """One decision to record. `customer` needs `id`, `status` and `jurisdiction` loaded."""

    customer: Customer
    purpose_code: str
    granted: bool
    channel: str
    method: str
    at: dt.datetime | None = None
    notice_version: int | None = None
    expires_at: dt.datetime | None = None
    ip: str | None = None
    user_agent: str | None = None
    proof: dict[str, Any] | None = None
    reason: str | None = None


def _refuse_personal_data(value: Any, path: str) -> None:
    if isinstance(value, str):
        if redact(value) != value:
            raise InvalidDecision(f"{path} looks like personal data", field=path.split(".")[0])
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_personal_data(str(key), path)
            _refuse_personal_data(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            _refuse_personal_data(item, path)


def _validate(decision: ConsentDecision, now: dt.datetime, *, system: bool) -> None:
    if decision.channel not in Channel.values:
        raise InvalidDecision(f"unknown channel {decision.channel!r}", field="channel")
    if not METHOD_RE.match(decision.method or ""):
        raise InvalidDecision(
            "method must be 1-64 letters, digits or . _ : -", field="collection_method"
        )
    at = decision.at or now
    if timezone.is_naive(at):
        raise InvalidDecision("timestamp must carry a time zone", field="timestamp")
    if at > now + CLOCK_SKEW:
        raise InvalidDecision("timestamp is in the future", field="timestamp")
    if decision.expires_at is not None:
        if not decision.granted:
            raise InvalidDecision("only a grant can expire", field="expires_at")
        if timezone.is_naive(decision.expires_at) or decision.expires_at <= at:
            raise InvalidDecision(
                "expires_at must be an aware time after the decision", field="expires_at"
            )
    if not system and decision.customer.status not in (
        CustomerStatus.ACTIVE,
        CustomerStatus.RESTRICTED,
    ):
        raise CustomerInactive(decision.customer.status)
    if decision.proof:
        _refuse_personal_data(decision.proof, "proof")


def _purpose_versions(codes: set[str]) -> tuple[dict[str, Purpose], dict[tuple[str, int], str]]:
    purposes = {p.code: p for p in Purpose.objects.filter(code__in=codes, is_active=True)}
    versions = {
        (code, version): digest
        for code, version, digest in PurposeVersion.objects.filter(
            purpose__code__in=purposes
        ).values_list("purpose__code", "version", "notice_hash")
    }
    return purposes, versions


StateFilter = Callable[[ConsentDecision, "ConsentState | None"], bool]


@dataclass
class _Outcome:
    events: list[ConsentEvent] = field(default_factory=list)
    withdrawn: list[tuple[uuid.UUID, str]] = field(default_factory=list)


def _record(
    decisions: Sequence[ConsentDecision],
    *,
    actor: str,
    system: bool = False,
    keep: StateFilter | None = None,
    audit_each: bool | None = None,
) -> _Outcome:
    """The one append path. `keep(decision, current_state)` filters decisions under the lock."""
    now = timezone.now()
    for decision in decisions:
        _validate(decision, now, system=system)
    purposes, versions = _purpose_versions({d.purpose_code for d in decisions})

    outcome = _Outcome()
    with transaction.atomic():
        advisory_lock(LEDGER_CHAIN)
        if keep is not None:
            decisions = _kept(decisions, keep)
        events: list[ConsentEvent] = []
        for decision in decisions:
            purpose = purposes.get(decision.purpose_code)
            if purpose is None:
                raise PurposeUnknown(decision.purpose_code)
            version = decision.notice_version or purpose.version
            digest = versions.get((purpose.code, version))
            if digest is None:
                raise NoticeVersionUnknown(purpose.code, version)
            proof = dict(decision.proof or {})
            if decision.reason is not None:
                proof["reason_given"] = bool(decision.reason.strip())
            events.append(
                ConsentEvent(
                    receipt_id=uuid.uuid4(),
                    customer_id=decision.customer.id,
                    purpose_code=purpose.code,
                    purpose_version=version,
                    notice_hash=digest,
                    granted=decision.granted,
                    at=decision.at or now,
                    recorded_at=now,
                    expires_at=decision.expires_at,
                    channel=decision.channel,
                    method=decision.method,
                    jurisdiction=decision.customer.jurisdiction,
                    ip_hash=proof_hash("ip", decision.ip),
                    user_agent_hash=proof_hash("ua", decision.user_agent),
                    actor=actor,
                    proof=json_roundtrip(proof) if proof else {},
                )
            )
        if not events:
            return outcome
        ledger_append(events)
        outcome.events = events
        outcome.withdrawn = _project(events)
        reasons = [
            ConsentReason(event_seq=e.seq, customer_id=e.customer_id, text=d.reason.strip())
            for e, d in zip(events, decisions, strict=True)
            if d.reason and d.reason.strip()
        ]
        for reason in reasons:
            reason.save(force_insert=True)
        _audit(events, actor, each=len(events) == 1 if audit_each is None else audit_each)
        if outcome.withdrawn:
            pairs = list(outcome.withdrawn)
            transaction.on_commit(lambda: withdrawal_hooks_enqueue(pairs))
    return outcome


def _kept(decisions: Sequence[ConsentDecision], keep: StateFilter) -> list[ConsentDecision]:
    customers = {d.customer.id for d in decisions}
    codes = {d.purpose_code for d in decisions}
    states = {
        (s.customer_id, s.purpose_id): s
        for s in ConsentState.objects.filter(customer_id__in=customers, purpose_id__in=codes)
    }
    return [d for d in decisions if keep(d, states.get((d.customer.id, d.purpose_code)))]


_STATE_UPSERT = """
INSERT INTO consent_consentstate
    (customer_id, purpose_code, granted, since, expires_at, channel, method, purpose_version,
     event_seq)
SELECT * FROM unnest(
    %s::uuid[], %s::varchar[], %s::boolean[], %s::timestamptz[], %s::timestamptz[],
    %s::varchar[], %s::varchar[], %s::integer[], %s::bigint[])
ON CONFLICT (customer_id, purpose_code) DO UPDATE SET
    granted = EXCLUDED.granted, since = EXCLUDED.since, expires_at = EXCLUDED.expires_at,
    channel = EXCLUDED.channel, method = EXCLUDED.method,
    purpose_version = EXCLUDED.purpose_version, event_seq = EXCLUDED.event_seq
WHERE consent_consentstate.since <= EXCLUDED.since
RETURNING customer_id, purpose_code, granted
"""


def _project(events: Sequence[ConsentEvent]) -> list[tuple[uuid.UUID, str]]:
    """Upsert the latest decision per (customer, purpose) into the state; one statement.

    A decision older than the state's (an imported backlog) changes nothing. Returns the
    (customer, purpose) pairs whose state is now withdrawn.
    """
    latest: dict[tuple[uuid.UUID, str], ConsentEvent] = {}
    for event in events:
        key = (event.customer_id, event.purpose_code)
        held = latest.get(key)
        if held is None or event.at >= held.at:
            latest[key] = event
    rows = list(latest.values())
    columns: list[list[Any]] = [
        [e.customer_id for e in rows],
        [e.purpose_code for e in rows],
        [e.granted for e in rows],
        [e.at for e in rows],
        [e.expires_at for e in rows],
        [e.channel for e in rows],
        [e.method for e in rows],
        [e.purpose_version for e in rows],
        [e.seq for e in rows],
    ]
    with connection.cursor() as cursor:
        cursor.execute(_STATE_UPSERT, columns)
        changed = cursor.fetchall()
    return [(customer_id, code) for customer_id, code, granted in changed if not granted]


def _audit(events: Sequence[ConsentEvent], actor: str, *, each: bool) -> None:
    if each:
        for event in events:
            audit_record(
                actor=actor,
                action="consent.grant" if event.granted else "consent.withdraw",
                object_type="profiles.customer",
                object_id=str(event.customer_id),
                details={
                    "purpose": event.purpose_code,
                    "version": event.purpose_version,
                    "channel": event.channel,
                    "method": event.method,
                    "seq": event.seq,
                    "reason_given": bool(event.proof.get("reason_given")),
                },
            )
        return
    granted = sum(1 for e in events if e.granted)
    audit_record(
        actor=actor,
        action="consent.record_batch",
        object_type="consent.consentevent",
        # Numbers as JSON integers: a "1000-2000" string would read as a phone number.
        details={
            "first_seq": events[0].seq,
            "last_seq": events[-1].seq,
            "count": len(events),
            "granted": granted,
            "withdrawn": len(events) - granted,
            "channels": sorted({e.channel for e in events}),
        },
    )


def withdrawal_hooks_enqueue(pairs: Sequence[tuple[uuid.UUID, str]]) -> None:
    """Send (customer id, purpose) pairs to the hook task; ids only, in chunks. After commit."""
    from consent.tasks import run_withdrawal_hooks, run_withdrawal_hooks_batch

    if len(pairs) == 1:
        customer_id, code = pairs[0]
        run_withdrawal_hooks.delay(str(customer_id), code)
        return
    for start in range(0, len(pairs), HOOK_TASK_CHUNK):
        chunk = [[str(c), p] for c, p in pairs[start : start + HOOK_TASK_CHUNK]]
        run_withdrawal_hooks_batch.delay(chunk)


def consent_record(
    *,
    customer: Customer,
    purpose_code: str,
    granted: bool,
    channel: str,
    method: str,
    actor: str,
    notice_version: int | None = None,
    at: dt.datetime | None = None,
    expires_at: dt.datetime | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    proof: dict[str, Any] | None = None,
    reason: str | None = None,
) -> ConsentEvent:
    """Record one grant or withdrawal: ledger, state and audit entry in one transaction.

    `notice_version` defaults to the purpose's current version; `at` to now. A staff `reason` is
    stored encrypted for the customer (the ledger records only that one was given). A
    withdrawal enqueues the withdrawal hooks after commit. Raises a ConsentError subclass
    (unknown purpose or version, inactive customer, invalid timestamps or method).
    """
    decision = ConsentDecision(
        customer=customer,
        purpose_code=purpose_code,
        granted=granted,
        channel=channel,
        method=method,
        at=at,
        notice_version=notice_version,
        expires_at=expires_at,
        ip=ip,
        user_agent=user_agent,
        proof=proof,
        reason=reason,
    )
    return _record([decision], actor=actor).events[0]


def consent_withdraw(
    *,
    customer: Customer,
    purpose_code: str,
    channel: str,
    method: str,
    actor: str,
    **kwargs: Any,
) -> ConsentEvent:
    """Record a withdrawal: as easy as giving (GDPR Art. 7(3)), effective at once."""
    return consent_record(
        customer=customer,
        purpose_code=purpose_code,
        granted=False,
        channel=channel,
        method=method,
        actor=actor,
        **kwargs,
    )


def consent_record_many(*, decisions: Sequence[ConsentDecision], actor: str) -> list[ConsentEvent]:
    """Record a batch under one lock: one ledger INSERT per 5,000, one state upsert, one audit.

    All or nothing: an invalid decision rolls the whole batch back. Imports and bulk jobs use
    this; the ledger is the same as if each decision had been recorded alone, in order.
    """
    if not decisions:
        return []
    return _record(decisions, actor=actor, audit_each=False).events
