"""Tasks for notices to recipients: thin callers of `cdp.privacy.recipients`, ids only."""

from __future__ import annotations

import uuid

from celery import shared_task


@shared_task(name="cdp.privacy.tasks.recipient_notice_deliver", bind=True, max_retries=None)
def recipient_notice_deliver(self, notice_id: str) -> str:  # type: ignore[no-untyped-def]
    """One signed POST; on failure retried with exponential backoff (the notice row counts the
    attempts and gives up after CDP_WEBHOOK_MAX_ATTEMPTS)."""
    from cdp.privacy.recipients import notice_delivery_attempt

    delay = notice_delivery_attempt(uuid.UUID(notice_id))
    if delay is not None:
        raise self.retry(countdown=delay)
    return notice_id


@shared_task(name="cdp.privacy.tasks.recipient_notices_resume", time_limit=120)
def recipient_notices_resume() -> int:
    """Scheduled: send again the webhook notices whose retry was lost with a worker."""
    from cdp.privacy.recipients import notices_resume

    return notices_resume()
