"""Recipients of personal data and their notices (GDPR Art. 19; CCPA: service providers told of
deletions): register a recipient, create the notices when a request completes, deliver them as
signed webhooks with retries, or track the ones sent by hand.

Notices are created in the transaction that completes the request, so a completed erasure always
has its notices, and are posted only after commit. The request's report lists the recipients
told, which is what the subject gets when they ask who was informed (Art. 19, second sentence).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from cdp.api.errors import ApplicationError
from cdp.audit.services import SYSTEM, audit_record
from cdp.privacy.models import DataSubjectRequest
from cdp.privacy.recipient_models import (
    NOTICE_KINDS,
    NoticeStatus,
    Recipient,
    RecipientKind,
    RecipientNotice,
)
from cdp.webhooks import derived_secret, gives_up, new_salt, retry_delay, signed_post

_SECRET_PURPOSE = b"cdp.privacy.recipient"
# A notice still pending or retrying this long after it was due was lost with a worker (a
# restart drops Celery's countdown retries): the resume job sends it again.
RESUME_AFTER = dt.timedelta(minutes=5)


def recipient_secret(recipient: Recipient) -> str:
    """The recipient's webhook signing secret (shown once at creation or rotation)."""
    return derived_secret(_SECRET_PURPOSE, recipient.pk, recipient.secret_salt)


def _invalid(code: str, message: str, field: str) -> ApplicationError:
    return ApplicationError(code, message, fields={field: [message]})


def _checked_kinds(notify_on: Iterable[str] | None) -> list[str]:
    kinds = list(NOTICE_KINDS if notify_on is None else notify_on)
    unknown = sorted(set(kinds) - set(NOTICE_KINDS))
    if unknown:
        raise _invalid(
            "recipient_notice_kind_unknown",
            f"unknown notice kinds {unknown}; allowed: {', '.join(NOTICE_KINDS)}",
            "notify_on",
        )
    return sorted(set(kinds))


def _checked_url(url: str) -> str:
    url = url.strip()
    if url and not url.startswith(("https://", "http://")):
        raise _invalid("recipient_url_invalid", "notify_url must be an http(s) URL", "notify_url")
    return url


def recipient_create(
    *,
    name: str,
    kind: str,
    actor: str,
    purpose: str = "",
    notify_url: str = "",
    notify_on: Iterable[str] | None = None,
) -> tuple[Recipient, str | None]:
    """Register a recipient. Returns it and its signing secret (None without a webhook URL):
    the secret is not stored and cannot be shown again, only rotated."""
    if kind not in RecipientKind.values:
        raise _invalid(
            "recipient_kind_unknown", f"kind must be one of {RecipientKind.values}", "kind"
        )
    if not name.strip():
        raise _invalid("recipient_name_missing", "a recipient needs a name", "name")
    if Recipient.objects.filter(name=name.strip()).exists():
        raise _invalid("recipient_name_taken", "a recipient with this name exists", "name")
    with transaction.atomic():
        recipient = Recipient.objects.create(
            name=name.strip(),
            kind=kind,
            purpose=purpose,
            notify_url=_checked_url(notify_url),
            notify_on=_checked_kinds(notify_on),
            secret_salt=new_salt(),
            created_by=actor,
        )
        audit_record(
            actor=actor,
            action="privacy.recipient_create",
            object_type="privacy.recipient",
            object_id=str(recipient.pk),
            details={"name": recipient.name, "kind": kind, "notify_on": recipient.notify_on},
        )
    return recipient, recipient_secret(recipient) if recipient.notify_url else None


def recipient_secret_rotate(*, recipient: Recipient, actor: str) -> str:
    """A new signing secret; the old one stops verifying at once."""
    with transaction.atomic():
        recipient.secret_salt = new_salt()
        recipient.save(update_fields=["secret_salt"])
        audit_record(
            actor=actor,
            action="privacy.recipient_secret_rotate",
            object_type="privacy.recipient",
            object_id=str(recipient.pk),
        )
    return recipient_secret(recipient)


def recipients_described() -> list[str]:
    """Active recipients as 'name (kind): purpose', for the access report and the records of
    processing."""
    return [
        f"{r.name} ({r.get_kind_display()})" + (f": {r.purpose}" if r.purpose else "")
        for r in Recipient.objects.filter(is_active=True).order_by("name")
    ]


def recipients_all(default: str) -> list[str]:
    """The registered recipients and the categories named in `CDP_PRIVACY_RECIPIENTS`, or the
    default sentence when there are neither."""
    named = [str(r) for r in getattr(settings, "CDP_PRIVACY_RECIPIENTS", [])]
    return recipients_described() + named or [default]


def notices_create(
    *,
    request: DataSubjectRequest,
    kind: str,
    customer_ids: Iterable[uuid.UUID],
    fields: Iterable[str] = (),
    lift: bool = False,
) -> list[str]:
    """Create the request's notices to every active recipient taking `kind` (call inside the
    transaction that completes the request); webhooks are posted after commit. Safe to call
    twice. Returns the recipients' names, for the request's report."""
    if kind not in NOTICE_KINDS:
        raise ValueError(f"unknown notice kind {kind!r}")
    ids = sorted({uuid.UUID(str(i)) for i in customer_ids})
    recipients = list(
        Recipient.objects.filter(is_active=True, notify_on__contains=[kind]).order_by("name")
    )
    if not recipients or not ids:
        return []
    RecipientNotice.objects.bulk_create(
        [
            RecipientNotice(
                request=request,
                recipient=r,
                kind=kind,
                customer_ids=ids,
                fields=sorted(fields),
                lift=lift,
                status=NoticeStatus.PENDING if r.notify_url else NoticeStatus.MANUAL,
            )
            for r in recipients
        ],
        ignore_conflicts=True,
    )
    pending = list(
        RecipientNotice.objects.filter(
            request=request, kind=kind, status=NoticeStatus.PENDING
        ).values_list("pk", flat=True)
    )
    _deliver_after_commit(pending)
    return [r.name for r in recipients]


def _deliver_after_commit(notice_ids: list[uuid.UUID]) -> None:
    if not notice_ids:
        return
    ids = [str(i) for i in notice_ids]

    def send() -> None:
        from cdp.privacy.recipient_tasks import recipient_notice_deliver

        for notice_id in ids:
            recipient_notice_deliver.delay(notice_id)

    transaction.on_commit(send)


def notice_body(notice: RecipientNotice) -> dict[str, Any]:
    """What the recipient receives: the request's kind and reference, and the pseudonymous
    customer ids (no identifier, no value)."""
    body: dict[str, Any] = {
        "id": str(notice.pk),
        "type": f"privacy.{notice.kind}",
        "request_id": str(notice.request_id),
        "created_at": notice.created_at.isoformat(),
        "customer_ids": [str(i) for i in notice.customer_ids],
    }
    if notice.kind == "rectification":
        body["fields"] = list(notice.fields)
    if notice.kind == "restriction":
        body["lifted"] = notice.lift
    return body


def _finished(notice: RecipientNotice) -> None:
    notice.customer_ids = []
    notice.next_retry_at = None


def notice_delivery_attempt(notice_id: uuid.UUID) -> int | None:
    """POST the notice once. Returns seconds until the next attempt, or None when finished
    (delivered, failed for good, sent by hand, or gone). Finished notices drop their ids."""
    notice = RecipientNotice.objects.select_related("recipient").filter(pk=notice_id).first()
    if notice is None or notice.status not in (NoticeStatus.PENDING, NoticeStatus.RETRYING):
        return None
    recipient = notice.recipient
    body = json.dumps(notice_body(notice)).encode()
    code, error = signed_post(
        recipient.notify_url,
        body,
        secret=recipient_secret(recipient),
        delivery_id=str(notice.pk),
        user_agent="cdp-privacy-notices/1",
    )
    now = timezone.now()
    with transaction.atomic():
        notice = RecipientNotice.objects.select_for_update().get(pk=notice_id)
        if notice.status not in (NoticeStatus.PENDING, NoticeStatus.RETRYING):
            return None  # marked sent by hand while the POST was in flight
        notice.attempts += 1
        notice.last_status_code = code
        notice.last_error = error or ("" if code and code < 300 else f"HTTP {code}")
        delay: int | None = None
        if code is not None and 200 <= code < 300:
            notice.status = NoticeStatus.DELIVERED
            notice.delivered_at = now
            _finished(notice)
        elif gives_up(code, notice.attempts):
            notice.status = NoticeStatus.FAILED  # kept with its ids: an officer retries or sends
            notice.next_retry_at = None
        else:
            delay = retry_delay(notice.attempts)
            notice.status = NoticeStatus.RETRYING
            notice.next_retry_at = now + dt.timedelta(seconds=delay)
        notice.save()
        if notice.status in (NoticeStatus.DELIVERED, NoticeStatus.FAILED):
            audit_record(
                actor=SYSTEM,
                action=f"privacy.notice_{notice.status}",
                object_type="privacy.request",
                object_id=str(notice.request_id),
                details={
                    "recipient": str(notice.recipient_id),
                    "kind": notice.kind,
                    "attempts": notice.attempts,
                    "status_code": code,
                },
            )
    return delay


def notice_mark_sent(*, notice: RecipientNotice, actor: str) -> RecipientNotice:
    """An officer told the recipient by another channel (a manual recipient, or a webhook that
    failed for good)."""
    with transaction.atomic():
        notice = RecipientNotice.objects.select_for_update().get(pk=notice.pk)
        if notice.status not in (NoticeStatus.MANUAL, NoticeStatus.FAILED):
            raise ApplicationError(
                "notice_not_open",
                f"a {notice.status} notice cannot be marked sent",
                status=409,
            )
        notice.status = NoticeStatus.SENT_MANUALLY
        notice.delivered_at = timezone.now()
        notice.sent_by = actor
        _finished(notice)
        notice.save()
        audit_record(
            actor=actor,
            action="privacy.notice_sent_manually",
            object_type="privacy.request",
            object_id=str(notice.request_id),
            details={"recipient": str(notice.recipient_id), "kind": notice.kind},
        )
    return notice


def notice_retry(*, notice: RecipientNotice, actor: str) -> RecipientNotice:
    """Send a failed webhook notice again (attempts start over)."""
    with transaction.atomic():
        notice = RecipientNotice.objects.select_for_update().get(pk=notice.pk)
        if notice.status != NoticeStatus.FAILED or not notice.recipient.notify_url:
            raise ApplicationError(
                "notice_not_failed", "only a failed webhook notice can be retried", status=409
            )
        notice.status = NoticeStatus.PENDING
        notice.attempts = 0
        notice.save(update_fields=["status", "attempts"])
        audit_record(
            actor=actor,
            action="privacy.notice_retry",
            object_type="privacy.request",
            object_id=str(notice.request_id),
            details={"recipient": str(notice.recipient_id), "kind": notice.kind},
        )
        _deliver_after_commit([notice.pk])
    return notice


def notices_resume() -> int:
    """Re-enqueue webhook notices whose delivery was lost (a worker restart drops Celery's
    countdown retries). Returns how many were sent again."""
    now = timezone.now()
    before = now - RESUME_AFTER
    stale = RecipientNotice.objects.filter(
        Q(status=NoticeStatus.PENDING, created_at__lt=before)
        | Q(status=NoticeStatus.RETRYING, next_retry_at__lt=before)
    )
    ids = list(stale.values_list("pk", flat=True)[:1_000])
    with transaction.atomic():
        _deliver_after_commit(ids)
    return len(ids)
