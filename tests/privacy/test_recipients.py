"""Recipients are told of erasures, rectifications and restrictions (GDPR Art. 19, CCPA notice to
service providers): signed webhooks with retries, manual notices an officer marks sent, and the
request's report naming who was told. Notices carry pseudonymous ids and field names only."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from cdp.api.errors import ApplicationError
from cdp.audit.models import AuditEntry
from cdp.privacy.models import ErasureCertificate
from cdp.privacy.recipient_models import NoticeStatus, RecipientNotice
from cdp.privacy.recipients import (
    notice_delivery_attempt,
    notice_mark_sent,
    notice_retry,
    notices_resume,
    recipient_create,
    recipient_secret_rotate,
    recipients_described,
)
from cdp.webhooks import SIGNATURE_HEADER, sign, verify
from tests.segmentation.segments.receiver import receiver

pytestmark = pytest.mark.django_db


def _webhook_recipient(url: str, **kwargs: Any) -> tuple[Any, str]:
    recipient, secret = recipient_create(
        name=kwargs.pop("name", "Mail service"),
        kind="processor",
        notify_url=url,
        actor="user:1",
        **kwargs,
    )
    assert secret is not None
    return recipient, secret


def test_erasure_notifies_each_recipient_with_a_signed_webhook_naming_only_the_id(
    subject: Any, verified: Any, run: Any
) -> None:
    customer = subject(events=2, email="told@example.com")
    with receiver([200]) as partner:
        recipient, secret = _webhook_recipient(partner.url)
        manual, no_secret = recipient_create(
            name="Call centre", kind="service_provider", actor="user:1"
        )
        assert no_secret is None

        request = run(verified("erasure", "told@example.com"))

        assert request.status == "completed"
        assert ErasureCertificate.objects.get(request=request).clean is True
        assert request.report["recipients_notified"] == ["Call centre", "Mail service"]
        notice = RecipientNotice.objects.get(request=request, recipient=recipient)
        assert notice.status == NoticeStatus.PENDING
        assert notice_delivery_attempt(notice.pk) is None

    (delivery,) = partner.requests
    assert verify(secret, delivery["body"], delivery["headers"][SIGNATURE_HEADER.lower()])
    body = json.loads(delivery["body"])
    assert body["type"] == "privacy.erasure"
    assert body["customer_ids"] == [str(customer.pk)]
    assert body["request_id"] == str(request.pk)
    assert b"told@example.com" not in delivery["body"]
    notice.refresh_from_db()
    assert (notice.status, notice.customer_ids) == (NoticeStatus.DELIVERED, [])
    assert RecipientNotice.objects.get(recipient=manual).status == NoticeStatus.MANUAL
    assert AuditEntry.objects.filter(
        action="privacy.notice_delivered", object_id=str(request.pk)
    ).exists()


def test_rectification_notice_names_the_fields_not_the_values(
    subject: Any, verified: Any, run: Any
) -> None:
    subject(events=0, email="fix@example.com")
    with receiver([200]) as partner:
        recipient, _ = _webhook_recipient(partner.url, notify_on=["rectification"])
        request = run(
            verified(
                "rectification", "fix@example.com", changes={"first_name": "Zebedee-Corrected"}
            )
        )
        notice = RecipientNotice.objects.get(request=request, recipient=recipient)
        notice_delivery_attempt(notice.pk)

    body = json.loads(partner.requests[0]["body"])
    assert (body["type"], body["fields"]) == ("privacy.rectification", ["first_name"])
    assert b"Zebedee" not in partner.requests[0]["body"]
    assert request.report["recipients_notified"] == ["Mail service"]


def test_recipients_get_only_the_kinds_they_take(subject: Any, verified: Any, run: Any) -> None:
    subject(events=0, email="restricted@example.com")
    recipient_create(
        name="Analytics vendor", kind="processor", actor="user:1", notify_on=["erasure"]
    )
    request = run(verified("restriction", "restricted@example.com"))
    assert request.report["recipients_notified"] == []
    assert not RecipientNotice.objects.filter(request=request).exists()


def test_a_failing_recipient_is_retried_with_backoff_then_given_up_on_410(
    subject: Any, verified: Any, run: Any
) -> None:
    subject(events=0, email="retry@example.com")
    with receiver([503, 410]) as partner:
        recipient, _ = _webhook_recipient(partner.url)
        request = run(verified("erasure", "retry@example.com"))
        notice = RecipientNotice.objects.get(request=request, recipient=recipient)

        delay = notice_delivery_attempt(notice.pk)
        notice.refresh_from_db()
        assert delay is not None and delay >= 0
        assert (notice.status, notice.last_status_code) == (NoticeStatus.RETRYING, 503)
        assert notice.next_retry_at is not None

        assert notice_delivery_attempt(notice.pk) is None
        notice.refresh_from_db()
        assert (notice.status, notice.attempts) == (NoticeStatus.FAILED, 2)
        assert notice.customer_ids, "a failed notice keeps its ids so an officer can act on it"

    with receiver([200]) as partner:
        recipient.notify_url = partner.url
        recipient.save()
        notice_retry(notice=notice, actor="user:1")
        assert notice_delivery_attempt(notice.pk) is None
    notice.refresh_from_db()
    assert notice.status == NoticeStatus.DELIVERED
    with pytest.raises(ApplicationError, match="cannot be marked sent"):
        notice_mark_sent(notice=notice, actor="user:1")


def test_a_manual_notice_is_marked_sent_by_an_officer_and_audited(
    subject: Any, verified: Any, run: Any
) -> None:
    subject(events=0, email="manual@example.com")
    recipient, _ = recipient_create(name="Printer", kind="third_party", actor="user:1")
    request = run(verified("erasure", "manual@example.com"))
    notice = RecipientNotice.objects.get(request=request, recipient=recipient)
    assert notice_delivery_attempt(notice.pk) is None  # nothing to POST

    notice_mark_sent(notice=notice, actor="user:7")

    notice.refresh_from_db()
    assert (notice.status, notice.sent_by, notice.customer_ids) == (
        NoticeStatus.SENT_MANUALLY,
        "user:7",
        [],
    )
    assert AuditEntry.objects.filter(
        action="privacy.notice_sent_manually", actor="user:7", object_id=str(request.pk)
    ).exists()
    with pytest.raises(ApplicationError, match="only a failed webhook notice"):
        notice_retry(notice=notice, actor="user:7")


def test_invalid_recipients_are_refused_with_named_errors() -> None:
    with pytest.raises(ApplicationError, match="http"):
        recipient_create(name="x", kind="processor", notify_url="ftp://x", actor="user:1")
    with pytest.raises(ApplicationError, match="unknown notice kinds"):
        recipient_create(name="y", kind="processor", notify_on=["access"], actor="user:1")
    with pytest.raises(ApplicationError, match="kind must be one of"):
        recipient_create(name="z", kind="friend", actor="user:1")
    recipient_create(name="Once", kind="partner", actor="user:1")
    with pytest.raises(ApplicationError, match="exists"):
        recipient_create(name="Once", kind="partner", actor="user:1")


def test_rotating_the_secret_invalidates_the_old_one() -> None:
    recipient, old = _webhook_recipient("https://partner.example/notices")
    new = recipient_secret_rotate(recipient=recipient, actor="user:1")
    assert new != old
    body = b"{}"
    header = sign(new, body, int(time.time()))
    assert verify(new, body, header) and not verify(old, body, header)


def test_resume_sends_again_notices_lost_with_a_worker(
    subject: Any, verified: Any, run: Any
) -> None:
    import datetime as dt

    from django.utils import timezone

    subject(events=0, email="lost@example.com")
    recipient, _ = _webhook_recipient("https://partner.example/notices")
    request = run(verified("erasure", "lost@example.com"))
    notice = RecipientNotice.objects.get(request=request, recipient=recipient)
    assert notices_resume() == 0  # fresh: its own task is still on its way
    RecipientNotice.objects.filter(pk=notice.pk).update(
        created_at=timezone.now() - dt.timedelta(hours=1)
    )
    assert notices_resume() == 1


def test_recipients_appear_in_the_article_15_and_30_descriptions() -> None:
    recipient_create(
        name="Mailer Ltd", kind="processor", purpose="sends order e-mails", actor="user:1"
    )
    recipient_create(name="Old CRM", kind="partner", actor="user:1")
    from cdp.privacy.recipient_models import Recipient

    Recipient.objects.filter(name="Old CRM").update(is_active=False)
    assert recipients_described() == ["Mailer Ltd (Processor (GDPR Art. 28)): sends order e-mails"]
