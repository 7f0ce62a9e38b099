"""Writes for data-subject requests: create, verify, extend, assign, reject, run, and the
executors of rectification, restriction, objection and opt-out. Access/portability lives in
`export`, erasure in `erasure`. Every state change writes its audit entry in its transaction;
work is enqueued only after commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from cdp.audit.services import SYSTEM, audit_record
from cdp.crypto import aead
from cdp.crypto.errors import NormalizationError
from cdp.crypto.subject_keys import subject_key_get_or_create
from cdp.privacy.deadlines import deadlines_for, extended_due, regime_for
from cdp.privacy.errors import RequestStateError, SubjectInvalid
from cdp.privacy.models import (
    DataSubjectRequest,
    Regime,
    RequestChannel,
    RequestStatus,
    RequestType,
    SubjectKind,
    Verification,
    VerificationMethod,
)
from cdp.privacy.recipients import notices_create
from cdp.profiles.models import Customer, CustomerStatus, Identity

CODE_TTL = dt.timedelta(hours=24)
CODE_ATTEMPTS = 5
NO_VERIFICATION = {RequestType.OPT_OUT_SALE}
RECTIFIABLE = ("first_name", "last_name", "birth_date", "address", "email", "phone", "country")


def _audit(request: DataSubjectRequest, actor: str, action: str, **details: Any) -> None:
    audit_record(
        actor=actor,
        action=f"privacy.{action}",
        object_type="privacy.request",
        object_id=str(request.id),
        details={"type": request.type, "status": request.status, **details},
    )


def subject_resolve(kind: str, value: str) -> tuple[bytes | None, Customer | None]:
    """The blind index of the identifier and the customer it names (following merges)."""
    from cdp.profiles.services import identifier_index

    customer: Customer | None
    index: bytes | None = None
    if kind == SubjectKind.CUSTOMER_ID:
        try:
            customer_id = uuid.UUID(str(value))
        except ValueError:
            raise SubjectInvalid("a customer id is a UUID") from None
        customer = Customer.objects.filter(pk=customer_id).first()
        if customer is None:
            return None, Customer(id=customer_id)  # unknown, but the id is the subject's
    else:
        try:
            _, index = identifier_index(kind, str(value))
        except NormalizationError as exc:
            raise SubjectInvalid(str(exc)) from None
        identity = Identity.objects.filter(kind=kind, value_index=index).first()
        customer = identity.customer if identity else None
    hops = 0
    while customer is not None and customer.merged_into_id and hops < 10:
        customer = Customer.objects.filter(pk=customer.merged_into_id).first()
        hops += 1
    return index, customer


def dsr_create(
    *,
    type: str,
    subject_kind: str,
    subject_value: str,
    actor: str,
    channel: str = RequestChannel.ADMIN,
    regime: str | None = None,
    received_at: dt.datetime | None = None,
    changes: dict[str, Any] | None = None,
    lift: bool = False,
    suppress: bool = True,
    regulation_id: uuid.UUID | None = None,
    verified_by_partner: bool = False,
) -> DataSubjectRequest:
    """Log a request: the identifier is kept only as a blind index (or the customer id), the
    regime is proposed from the subject's jurisdiction, the deadlines follow the regime.

    An opt-out needs no verification and is run at once (after commit); a request forwarded by
    a partner that attests verification (`verified_by_partner`) is verified on creation.
    """
    if type not in RequestType.values:
        raise SubjectInvalid(f"unknown request type {type!r}")
    if subject_kind not in SubjectKind.values:
        raise SubjectInvalid(f"unknown subject kind {subject_kind!r}")
    if type == RequestType.RECTIFICATION:
        unknown = sorted(set(changes or {}) - set(RECTIFIABLE))
        if not changes or unknown:
            raise SubjectInvalid(f"rectification changes one or more of: {', '.join(RECTIFIABLE)}")
    index, customer = subject_resolve(subject_kind, subject_value)
    found = customer is not None and customer._state.adding is False
    regime = regime or regime_for(customer.jurisdiction if found else None)
    if regime not in Regime.values:
        raise SubjectInvalid(f"unknown regime {regime!r}")
    received_at = received_at or timezone.now()
    deadlines = deadlines_for(regime=regime, request_type=type, received_at=received_at)
    with transaction.atomic():
        request = DataSubjectRequest(
            type=type,
            regime=regime,
            channel=channel,
            subject_kind=subject_kind,
            subject_index=index,
            customer_id=customer.id if customer is not None else None,
            subject_found=found,
            received_at=received_at,
            due_at=deadlines.due_at,
            ack_due_at=deadlines.ack_due_at,
            suppress=suppress,
            lift=lift,
            regulation_id=regulation_id,
            created_by=actor,
        )
        request.changes = changes or None
        request.save(force_insert=True)
        _audit(
            request,
            actor,
            "request_create",
            regime=regime,
            channel=channel,
            subject_kind=subject_kind,
            subject_found=found,
            due_at=request.due_at,
        )
        if verified_by_partner:
            _verified(request, actor, VerificationMethod.PARTNER, "")
        if type in NO_VERIFICATION or verified_by_partner:
            _enqueue(request)
    return request


def _enqueue(request: DataSubjectRequest) -> None:
    request_id = str(request.id)

    def send() -> None:
        from cdp.privacy.tasks import dsr_execute

        dsr_execute.delay(request_id)

    transaction.on_commit(send)


def _locked(request: DataSubjectRequest) -> DataSubjectRequest:
    return DataSubjectRequest.objects.select_for_update().get(pk=request.pk)


def _verified(request: DataSubjectRequest, actor: str, method: str, note: str) -> Verification:
    now = timezone.now()
    verification = Verification(
        request=request, method=method, actor=actor, verified_at=now, evidence_note=note or None
    )
    verification.save(force_insert=True)
    request.status = RequestStatus.VERIFIED
    request.verified_at = now
    request.save(update_fields=["status", "verified_at", "updated_at"])
    _audit(request, actor, "request_verify", method=method, evidence_note=bool(note))
    return verification


def dsr_verify(
    *, request: DataSubjectRequest, method: str, actor: str, evidence_note: str = ""
) -> Verification:
    """Record how the subject's identity was verified (method and an encrypted evidence note)."""
    if method not in VerificationMethod.values:
        raise SubjectInvalid(f"unknown verification method {method!r}")
    with transaction.atomic():
        request = _locked(request)
        if request.status != RequestStatus.RECEIVED:
            raise RequestStateError(f"a {request.status} request cannot be verified")
        return _verified(request, actor, method, evidence_note.strip())


def _code_hash(salt: bytes, code: str) -> bytes:
    return hashlib.scrypt(code.strip().encode(), salt=salt, n=2**12, r=8, p=1, dklen=32)


def dsr_code_issue(
    *, request: DataSubjectRequest, method: str, actor: str
) -> tuple[Verification, str]:
    """A one-time code to send to the subject; only its salted scrypt hash is stored."""
    if method not in (VerificationMethod.EMAIL_CODE, VerificationMethod.SMS_CODE):
        raise SubjectInvalid("codes are sent by e-mail or SMS")
    code = f"{secrets.randbelow(10**8):08d}"
    salt = os.urandom(16)
    with transaction.atomic():
        request = _locked(request)
        if request.status != RequestStatus.RECEIVED:
            raise RequestStateError(f"a {request.status} request cannot be verified")
        verification = Verification(
            request=request,
            method=method,
            actor=actor,
            code_salt=salt,
            code_hash=_code_hash(salt, code),
            code_expires_at=timezone.now() + CODE_TTL,
        )
        verification.save(force_insert=True)
        _audit(request, actor, "verification_code_issue", method=method)
    return verification, code


def dsr_code_check(*, request: DataSubjectRequest, code: str, actor: str) -> bool:
    """Compare a code in constant time with the latest live one; verifies the request on a match.

    At most CODE_ATTEMPTS tries per code; every attempt is audited (not the code)."""
    with transaction.atomic():
        request = _locked(request)
        verification = (
            Verification.objects.select_for_update()
            .filter(request=request, code_hash__isnull=False, verified_at__isnull=True)
            .order_by("-created_at")
            .first()
        )
        if verification is None or request.status != RequestStatus.RECEIVED:
            raise RequestStateError("no code is waiting for this request")
        live = verification.code_expires_at > timezone.now()
        verification.attempts += 1
        ok = (
            live
            and verification.attempts <= CODE_ATTEMPTS
            and hmac.compare_digest(
                _code_hash(bytes(verification.code_salt), code), bytes(verification.code_hash)
            )
        )
        if ok:
            verification.verified_at = timezone.now()
        verification.save(update_fields=["attempts", "verified_at"])
        _audit(request, actor, "verification_code_check", matched=ok, attempt=verification.attempts)
        if ok:
            request.status = RequestStatus.VERIFIED
            request.verified_at = verification.verified_at
            request.save(update_fields=["status", "verified_at", "updated_at"])
    return ok


def dsr_extend(*, request: DataSubjectRequest, reason: str, actor: str) -> DataSubjectRequest:
    """Extend the deadline once, by the regime's rule, with the reason told to the subject."""
    if not reason.strip():
        raise SubjectInvalid("an extension needs the reason given to the subject")
    with transaction.atomic():
        request = _locked(request)
        if request.status not in (RequestStatus.RECEIVED, RequestStatus.VERIFIED):
            raise RequestStateError(f"a {request.status} request cannot be extended")
        if request.extended_at is not None:
            raise RequestStateError("the deadline was already extended once")
        now = timezone.now()
        if now > request.due_at:
            raise RequestStateError("the extension must be notified before the deadline")
        try:
            request.due_at = extended_due(
                regime=request.regime, request_type=request.type, due_at=request.due_at
            )
        except ValueError as exc:
            raise RequestStateError(str(exc)) from None
        request.extended_at = now
        request.extension_reason = reason.strip()
        request.save(update_fields=["due_at", "extended_at", "extension_reason", "updated_at"])
        _audit(request, actor, "request_extend", due_at=request.due_at)
    return request


def dsr_assign(*, request: DataSubjectRequest, assignee: Any, actor: str) -> DataSubjectRequest:
    with transaction.atomic():
        request = _locked(request)
        request.assignee = assignee
        request.save(update_fields=["assignee", "updated_at"])
        _audit(request, actor, "request_assign", assignee=assignee.pk if assignee else None)
    return request


def dsr_acknowledge(*, request: DataSubjectRequest, actor: str) -> DataSubjectRequest:
    """Record that receipt was acknowledged to the subject (CCPA: within 10 business days)."""
    with transaction.atomic():
        request = _locked(request)
        if request.acknowledged_at is None:
            request.acknowledged_at = timezone.now()
            request.save(update_fields=["acknowledged_at", "updated_at"])
            _audit(request, actor, "request_acknowledge")
    return request


def dsr_reject(*, request: DataSubjectRequest, basis: str, actor: str) -> DataSubjectRequest:
    """Refuse a request, keeping the basis of the denial (encrypted; 11 CCR 7101)."""
    if not basis.strip():
        raise SubjectInvalid("a rejection needs its basis")
    with transaction.atomic():
        request = _locked(request)
        if request.status not in (RequestStatus.RECEIVED, RequestStatus.VERIFIED):
            raise RequestStateError(f"a {request.status} request cannot be rejected")
        request.status = RequestStatus.REJECTED
        request.rejection_basis = basis.strip()
        request.completed_at = timezone.now()
        request.save(update_fields=["status", "rejection_basis", "completed_at", "updated_at"])
        _audit(request, actor, "request_reject")
    return request


def dsr_run(*, request: DataSubjectRequest, actor: str) -> DataSubjectRequest:
    """Queue a verified request for the worker (opt-outs need no verification)."""
    with transaction.atomic():
        request = _locked(request)
        ready = request.status == RequestStatus.VERIFIED or (
            request.type in NO_VERIFICATION and request.status == RequestStatus.RECEIVED
        )
        if not ready:
            raise RequestStateError(
                "only a verified request can run"
                if request.status == "received"
                else f"a {request.status} request cannot run"
            )
        _audit(request, actor, "request_run")
        _enqueue(request)
    return request


# --- execution (the worker) ----------------------------------------------------------------------


def dsr_execute(*, request_id: uuid.UUID, actor: str = SYSTEM) -> DataSubjectRequest | None:
    """Carry out a request: claim it (verified -> running), then the type's executor.

    Safe to run twice: a request already running elsewhere, completed or rejected is left alone.
    A failure marks the request failed (and audits it) instead of leaving it running.
    """
    with transaction.atomic():
        request = (
            DataSubjectRequest.objects.select_for_update(skip_locked=True)
            .filter(pk=request_id)
            .first()
        )
        if request is None:
            return None
        ready = request.status == RequestStatus.VERIFIED or (
            request.type in NO_VERIFICATION and request.status == RequestStatus.RECEIVED
        )
        if not ready:
            return request
        request.status = RequestStatus.RUNNING
        request.started_at = timezone.now()
        request.save(update_fields=["status", "started_at", "updated_at"])
        _audit(request, actor, "request_start")
    try:
        _EXECUTORS[request.type](request=request, actor=actor)
    except Exception as exc:
        with transaction.atomic():
            request = _locked(request)
            request.status = RequestStatus.FAILED
            request.report = {"error": type(exc).__name__}
            request.save(update_fields=["status", "report", "updated_at"])
            _audit(request, actor, "request_fail", error=type(exc).__name__)
        raise
    request.refresh_from_db()
    return request


def _customer(request: DataSubjectRequest) -> Customer | None:
    if request.customer_id is None:
        return None
    return Customer.objects.filter(pk=request.customer_id).first()


def _complete(request: DataSubjectRequest, actor: str, report: dict[str, Any]) -> None:
    request = _locked(request)
    request.status = RequestStatus.COMPLETED
    request.completed_at = timezone.now()
    request.subject_found = report.get("subject_found", True)
    request.report = report
    request.save(update_fields=["status", "completed_at", "subject_found", "report", "updated_at"])
    _audit(
        request, actor, "request_complete", **{k: v for k, v in report.items() if k != "message"}
    )


NOT_FOUND = {"subject_found": False, "message": "the platform holds no data on this subject"}


def _run_export(*, request: DataSubjectRequest, actor: str) -> None:
    from cdp.privacy.export import dsr_execute_export

    dsr_execute_export(request=request, actor=actor)


def _run_erasure(*, request: DataSubjectRequest, actor: str) -> None:
    from cdp.privacy.erasure import dsr_execute_erasure

    dsr_execute_erasure(request=request, actor=actor)


def sealed_change(customer_id: uuid.UUID, request_id: uuid.UUID, value: dict[str, Any]) -> str:
    """Before/after values for the audit log: sealed under the subject's data key (so erasure
    shreds them), bound to the request, hex-encoded (the chain covers the ciphertext only)."""
    key = subject_key_get_or_create(customer_id)
    aad = aead.associated_data(
        key.header, b"|audit|rectification|", key.subject, aead.id_bytes(request_id)
    )
    plaintext = json.dumps(value, default=str, sort_keys=True).encode()
    return aead.seal(key.cipher, key.header, plaintext, aad).hex()


def sealed_change_open(customer_id: uuid.UUID, request_id: uuid.UUID, sealed: str) -> Any:
    from cdp.crypto.subject_keys import subject_key_get

    key = subject_key_get(customer_id)
    aad = aead.associated_data(
        key.header, b"|audit|rectification|", key.subject, aead.id_bytes(request_id)
    )
    return json.loads(aead.open_sealed(key.cipher, bytes.fromhex(sealed), aad))


def _run_rectification(*, request: DataSubjectRequest, actor: str) -> None:
    from cdp.profiles.jurisdiction import country_code, jurisdiction_for
    from cdp.profiles.services import identifier_index

    with transaction.atomic():
        customer = _customer(request)
        if customer is None:
            _complete(request, actor, NOT_FOUND)
            return
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        changes = dict(request.changes or {})
        before = {name: getattr(customer, name) for name in changes}
        for name, value in changes.items():
            if name == "country":
                customer.country = country_code(value)
                customer.jurisdiction = jurisdiction_for(customer.country)
            elif name in ("email", "phone") and value:
                normalized, index = identifier_index(name, value)
                old_index = getattr(customer, f"{name}_index")
                setattr(customer, name, normalized)
                setattr(customer, f"{name}_index", index)
                identity = Identity.objects.filter(
                    customer=customer, kind=name, value_index=old_index
                ).first()
                if identity is not None:
                    identity.value, identity.value_index = normalized, index
                    identity.save()
            else:
                setattr(customer, name, value)
        customer.save()
        audit_record(
            actor=actor,
            action="privacy.rectification",
            object_type="profiles.customer",
            object_id=str(customer.id),
            details={
                "request": str(request.id),
                "fields": sorted(changes),
                "change_sealed": sealed_change(
                    customer.id, request.id, {"before": before, "after": changes}
                ),
            },
        )
        notified = notices_create(
            request=request, kind="rectification", customer_ids=[customer.id], fields=changes
        )
        _complete(
            request,
            actor,
            {"subject_found": True, "fields": sorted(changes), "recipients_notified": notified},
        )


def _run_restriction(*, request: DataSubjectRequest, actor: str) -> None:
    from consent.services import consent_customer_restricted

    with transaction.atomic():
        customer = _customer(request)
        if customer is None:
            _complete(request, actor, NOT_FOUND)
            return
        target = CustomerStatus.ACTIVE if request.lift else CustomerStatus.RESTRICTED
        source = CustomerStatus.RESTRICTED if request.lift else CustomerStatus.ACTIVE
        changed = Customer.objects.filter(pk=customer.pk, status=source).update(status=target)
        audit_record(
            actor=actor,
            action="privacy.restriction_lift" if request.lift else "privacy.restriction",
            object_type="profiles.customer",
            object_id=str(customer.id),
            details={"request": str(request.id), "changed": bool(changed)},
        )
        if changed and not request.lift:
            consent_customer_restricted(customer_id=customer.id)
        notified = (
            notices_create(
                request=request, kind="restriction", customer_ids=[customer.id], lift=request.lift
            )
            if changed
            else []
        )
        _complete(
            request,
            actor,
            {
                "subject_found": True,
                "status": target,
                "changed": bool(changed),
                "recipients_notified": notified,
            },
        )


def _run_objection(*, request: DataSubjectRequest, actor: str) -> None:
    from consent.models import Channel
    from consent.services import consent_object

    with transaction.atomic():
        customer = _customer(request)
        if customer is None:
            _complete(request, actor, NOT_FOUND)
            return
        channel = Channel.API if request.channel != RequestChannel.ADMIN else Channel.ADMIN
        events = consent_object(customer=customer, actor=actor, channel=channel)
        _complete(
            request,
            actor,
            {"subject_found": True, "withdrawn": sorted({e.purpose_code for e in events})},
        )


def _run_opt_out(*, request: DataSubjectRequest, actor: str) -> None:
    from consent.models import Channel, Coverage, Purpose
    from consent.services import consent_record

    with transaction.atomic():
        customer = _customer(request)
        if customer is None:
            _complete(request, actor, NOT_FOUND)
            return
        channel = Channel.API if request.channel != RequestChannel.ADMIN else Channel.ADMIN
        codes = list(
            Purpose.objects.filter(
                is_active=True, covers__contains=[Coverage.SALE_SHARING]
            ).values_list("code", flat=True)
        )
        for code in codes:
            consent_record(
                customer=customer,
                purpose_code=code,
                granted=False,
                channel=channel,
                method="opt_out_request",
                actor=actor,
                proof={"request": str(request.id)},
            )
        _complete(request, actor, {"subject_found": True, "withdrawn": sorted(codes)})


_EXECUTORS = {
    RequestType.ACCESS: _run_export,
    RequestType.PORTABILITY: _run_export,
    RequestType.ERASURE: _run_erasure,
    RequestType.RECTIFICATION: _run_rectification,
    RequestType.RESTRICTION: _run_restriction,
    RequestType.OBJECTION: _run_objection,
    RequestType.OPT_OUT_SALE: _run_opt_out,
}
