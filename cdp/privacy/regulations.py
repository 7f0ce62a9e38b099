"""Segment-compatible regulations: SUPPRESS_ONLY, SUPPRESS_WITH_DELETE, DELETE_ONLY, UNSUPPRESS.

A partner posts up to 5,000 subject ids of one type; the regulation keeps only their count, and
each subject becomes a blind index (suppression) and, for the deleting types, an erasure request
attested by the partner, so every erasure still yields its certificate. Status runs
INITIALIZED -> RUNNING -> FINISHED (or PARTIAL_SUCCESS / FAILED).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from cdp.audit.services import SYSTEM, audit_record
from cdp.crypto.errors import NormalizationError
from cdp.ingest.models import Suppression
from cdp.privacy.errors import SubjectInvalid
from cdp.privacy.models import (
    DataSubjectRequest,
    Regulation,
    RequestChannel,
    RequestStatus,
    RequestType,
)

logger = logging.getLogger(__name__)
MAX_SUBJECTS = 5_000
SUBJECT_TYPES = {
    "USER_ID": "user_id",
    "ANONYMOUS_ID": "anonymous_id",
    "EMAIL": "email",
    "PHONE": "phone",
    "CUSTOMER_ID": "customer_id",
}
DELETING = {Regulation.Type.SUPPRESS_WITH_DELETE, Regulation.Type.DELETE_ONLY}
SUPPRESSING = {Regulation.Type.SUPPRESS_ONLY, Regulation.Type.SUPPRESS_WITH_DELETE}


def _indexes(kind: str, subject_ids: list[str]) -> list[bytes]:
    from cdp.profiles.services import identifier_index

    out = []
    for value in subject_ids:
        try:
            out.append(identifier_index(kind, value)[1])
        except NormalizationError:
            raise SubjectInvalid(f"a subjectId is not a valid {kind}") from None
    return out


def regulation_create(
    *, regulation_type: str, subject_type: str, subject_ids: list[str], actor: str
) -> Regulation:
    """Validate and record a regulation, create its erasure requests, enqueue it after commit."""
    if regulation_type not in Regulation.Type.values:
        raise SubjectInvalid(f"regulationType must be one of {', '.join(Regulation.Type.values)}")
    kind = SUBJECT_TYPES.get(subject_type)
    if kind is None:
        raise SubjectInvalid(f"subjectType must be one of {', '.join(SUBJECT_TYPES)}")
    if not 1 <= len(subject_ids) <= MAX_SUBJECTS:
        raise SubjectInvalid(f"subjectIds takes 1 to {MAX_SUBJECTS} ids")
    if kind != "customer_id":
        _indexes(kind, subject_ids)  # refuse a malformed id before writing anything
    from cdp.privacy.services import dsr_create

    with transaction.atomic():
        regulation = Regulation.objects.create(
            regulation_type=regulation_type,
            subject_type=subject_type,
            subject_count=len(subject_ids),
            actor=actor,
        )
        if regulation_type in DELETING:
            for value in subject_ids:
                dsr_create(
                    type=RequestType.ERASURE,
                    subject_kind=kind,
                    subject_value=value,
                    actor=actor,
                    channel=RequestChannel.REGULATION,
                    suppress=regulation_type in SUPPRESSING,
                    regulation_id=regulation.id,
                    verified_by_partner=False,
                )
        elif kind != "customer_id":
            regulation.counts = {"pending_indexes": [i.hex() for i in _indexes(kind, subject_ids)]}
            regulation.save(update_fields=["counts"])
        audit_record(
            actor=actor,
            action="privacy.regulation_create",
            object_type="privacy.regulation",
            object_id=str(regulation.id),
            details={
                "type": regulation_type,
                "subject_type": subject_type,
                "subjects": len(subject_ids),
            },
        )
        regulation_id = str(regulation.id)

        def send() -> None:
            from cdp.privacy.tasks import regulation_execute as task

            task.delay(regulation_id)

        transaction.on_commit(send)
    return regulation


def regulation_execute(*, regulation_id: uuid.UUID, actor: str = SYSTEM) -> Regulation | None:
    """Apply the regulation: suppress/unsuppress the indexes, run each erasure request."""
    from cdp.privacy.erasure import suppressions_add
    from cdp.privacy.services import _verified, dsr_execute

    with transaction.atomic():
        regulation = (
            Regulation.objects.select_for_update(skip_locked=True).filter(pk=regulation_id).first()
        )
        if regulation is None or regulation.status != Regulation.Status.INITIALIZED:
            return regulation
        regulation.status = Regulation.Status.RUNNING
        regulation.save(update_fields=["status"])
    counts: dict[str, Any] = {}
    pending = [bytes.fromhex(h) for h in regulation.counts.get("pending_indexes", [])]
    kind = SUBJECT_TYPES[regulation.subject_type]
    with transaction.atomic():
        if regulation.regulation_type == Regulation.Type.SUPPRESS_ONLY and pending:
            counts["suppressed"] = suppressions_add(
                [(kind, i) for i in pending], reason="regulation"
            )
        elif regulation.regulation_type == Regulation.Type.UNSUPPRESS and pending:
            counts["unsuppressed"], _ = Suppression.objects.filter(
                kind=kind, value_index__in=pending
            ).delete()
    for request in DataSubjectRequest.objects.filter(regulation=regulation).order_by("received_at"):
        try:
            if request.status == RequestStatus.RECEIVED:
                with transaction.atomic():
                    _verified(request, actor, "partner", "")
            dsr_execute(request_id=request.id, actor=actor)
        except Exception:  # marked failed by dsr_execute; the other subjects still run
            logger.exception("regulation %s: request %s failed", regulation.id, request.id)
    statuses = list(
        DataSubjectRequest.objects.filter(regulation=regulation).values_list("status", flat=True)
    )
    counts.update(
        requests=len(statuses),
        completed=statuses.count(RequestStatus.COMPLETED),
        failed=statuses.count(RequestStatus.FAILED),
    )
    with transaction.atomic():
        regulation.counts = counts
        regulation.finished_at = timezone.now()
        if counts["failed"] and counts["completed"]:
            regulation.status = Regulation.Status.PARTIAL_SUCCESS
        elif counts["failed"]:
            regulation.status = Regulation.Status.FAILED
        else:
            regulation.status = Regulation.Status.FINISHED
        regulation.save(update_fields=["counts", "finished_at", "status"])
        audit_record(
            actor=actor,
            action="privacy.regulation_finish",
            object_type="privacy.regulation",
            object_id=str(regulation.id),
            details={"status": regulation.status, **counts},
        )
    return regulation
