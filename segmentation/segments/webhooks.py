"""Signed webhook deliveries: the secret, the signature, one attempt and its backoff.

Signature (Stripe-style, so partners can reuse verification code): the header

    X-CDP-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

Receivers recompute it over the raw body, compare in constant time and reject old timestamps
(replays). The secret is derived, never stored: HMAC-SHA256 of the subscription id and its salt
under a key derived from SECRET_KEY, so a database dump alone cannot forge deliveries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cdp.env import env_int
from segmentation.segments.models import DeliveryStatus, WebhookDelivery, WebhookSubscription

SIGNATURE_HEADER = "X-CDP-Signature"
# Attempts in all (the first plus retries), the first retry's delay, and the request timeout.
MAX_ATTEMPTS = env_int("CDP_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
RETRY_BASE_SECONDS = env_int("CDP_WEBHOOK_RETRY_BASE_SECONDS", 2, minimum=0)
TIMEOUT_SECONDS = 10


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (3xx, retried), never followed: a delivery cannot be bounced to
    another host."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# The standard library's client: one POST needs no extra dependency.
_opener = urllib.request.build_opener(_NoRedirect)


def new_salt() -> str:
    return secrets.token_hex(16)


def webhook_secret(subscription: WebhookSubscription) -> str:
    """The subscription's signing secret (shown to the partner once, at creation)."""
    key = hashlib.sha256(b"cdp.segments.webhook|" + settings.SECRET_KEY.encode()).digest()
    message = f"{subscription.pk}|{subscription.secret_salt}".encode()
    return "whsec_" + hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, body: bytes, header: str, *, tolerance: int = 300) -> bool:
    """What a receiver does (used by the tests and given in the README)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def retry_delay(attempts: int) -> int:
    """Seconds before the next attempt after `attempts` failed ones: base x 2^(attempts-1)."""
    return RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)


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
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "cdp-webhooks/1",
        SIGNATURE_HEADER: sign(webhook_secret(subscription), body, int(time.time())),
        "X-CDP-Delivery": str(delivery.pk),
    }
    code: int | None = None
    error = ""
    if not subscription.url.startswith(("https://", "http://")):
        raise ValueError("webhook URLs must be http(s)")  # checked on creation too
    request = urllib.request.Request(  # noqa: S310 (scheme checked just above)
        subscription.url, data=body, headers=headers, method="POST"
    )
    try:
        with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            code = response.status
    except urllib.error.HTTPError as exc:
        code = exc.code
    except (urllib.error.URLError, OSError) as exc:
        error = type(exc).__name__  # the class only: messages may echo the URL's credentials
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
        elif delivery.attempts >= MAX_ATTEMPTS or (code is not None and code in (400, 410)):
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
