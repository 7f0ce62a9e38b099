"""Signed webhook deliveries of segment changes: the body and one attempt; the signature, the
client and the backoff are `cdp.webhooks`'s (shared with the privacy notices to recipients).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from cdp.webhooks import derived_secret, gives_up, retry_delay, signed_post
from segmentation.segments.models import DeliveryStatus, WebhookDelivery, WebhookSubscription


def webhook_secret(subscription: WebhookSubscription) -> str:
    """The subscription's signing secret (shown to the partner once, at creation)."""
    return derived_secret(b"cdp.segments.webhook", subscription.pk, subscription.secret_salt)


def delivery_body(delivery: WebhookDelivery, segment_id: uuid.UUID) -> dict[str, Any]:
    from segmentation.segments.selectors import segment_user_ids

    ids = [uuid.UUID(i) for i in delivery.customer_ids]
    user_ids = segment_user_ids(customer_ids=ids)
    return {
        "id": str(delivery.pk),
        "type": f"segment.{delivery.event}",
        "segment_id": str(segment_id),
        "created_at": delivery.created_at.isoformat(),
        "customers": [{"customer_id": str(i), "user_ids": user_ids.get(i, [])} for i in ids],
    }


def webhook_delivery_attempt(delivery_id: uuid.UUID) -> int | None:
    """POST the delivery once. Returns seconds until the next attempt, or None when finished
    (delivered, failed for good, or gone). Finished deliveries drop their customer ids."""
    delivery = WebhookDelivery.objects.select_related("subscription").filter(pk=delivery_id).first()
    if delivery is None or delivery.status in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED):
        return None
    subscription = delivery.subscription
    body = json.dumps(delivery_body(delivery, subscription.segment_id)).encode()
    code, error = signed_post(
        subscription.url, body, secret=webhook_secret(subscription), delivery_id=str(delivery.pk)
    )
    now = timezone.now()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        delivery.attempts += 1
        delivery.last_status_code = code
        delivery.last_error = error or ("" if code and code < 300 else f"HTTP {code}")
        delay: int | None = None
        if code is not None and 200 <= code < 300:
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at = now
        elif gives_up(code, delivery.attempts):
            delivery.status = DeliveryStatus.FAILED  # 410 Gone / 400: retrying cannot help
        else:
            delay = retry_delay(delivery.attempts)
            delivery.status = DeliveryStatus.RETRYING
            delivery.next_retry_at = now + dt.timedelta(seconds=delay)
        if delay is None:
            delivery.customer_ids = []
            delivery.next_retry_at = None
        delivery.save()
    return delay
