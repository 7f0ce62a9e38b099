"""With a real worker and broker: an erasure queued by an officer runs on the worker, and the
worker posts the recipient's notice, retrying after a failed first attempt."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cdp.privacy.recipient_models import NoticeStatus, RecipientNotice
from cdp.privacy.recipients import recipient_create
from cdp.privacy.services import dsr_run
from cdp.webhooks import SIGNATURE_HEADER, verify
from tests.segmentation.segments.receiver import receiver

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def ledger_emptied() -> Iterator[None]:
    """Transactional tests: empty the append-only ledger and audit log before the flush."""
    yield
    from consent.testing import consent_ledger_clear_for_tests

    consent_ledger_clear_for_tests()


def _wait_for(predicate: Any, timeout: float = 60.0) -> None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not true within {timeout} s")


def test_the_worker_erases_then_notifies_the_recipient(
    celery_worker_process: Any, subject: Any, verified: Any
) -> None:
    customer = subject(events=2, email="worker-erase@example.com")
    with receiver([503, 200]) as partner:
        recipient, secret = recipient_create(
            name="Mailer", kind="processor", notify_url=partner.url, actor="user:1"
        )
        assert secret is not None
        request = verified("erasure", "worker-erase@example.com")
        dsr_run(request=request, actor="user:1")

        def delivered() -> bool:
            notice = RecipientNotice.objects.filter(request=request, recipient=recipient).first()
            return notice is not None and notice.status == NoticeStatus.DELIVERED

        _wait_for(delivered)

    request.refresh_from_db()
    assert request.status == "completed"
    assert request.report["recipients_notified"] == ["Mailer"]
    first, second = partner.requests
    assert first["headers"]["x-cdp-delivery"] == second["headers"]["x-cdp-delivery"]
    assert verify(secret, second["body"], second["headers"][SIGNATURE_HEADER.lower()])
    assert json.loads(second["body"])["customer_ids"] == [str(customer.pk)]
