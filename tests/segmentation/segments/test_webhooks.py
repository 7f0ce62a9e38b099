"""Signed webhook deliveries: signature, retries with backoff, the delivery log."""

from __future__ import annotations

import json
import time

import pytest

from cdp.api.errors import ApplicationError
from cdp.webhooks import SIGNATURE_HEADER, retry_delay, sign, verify
from segmentation.segments.models import DeliveryStatus, WebhookDelivery
from segmentation.segments.services import segment_refresh, webhook_subscription_create
from segmentation.segments.webhooks import webhook_delivery_attempt
from tests.segmentation.segments.conftest import customer, grant, segment
from tests.segmentation.segments.receiver import receiver

GOLD = {"field": "trait.plan", "op": "eq", "value": "gold"}


def test_signature_verifies_and_rejects_tampering_and_replays():
    body = b'{"a": 1}'
    now = int(time.time())
    header = sign("whsec_x", body, now)
    assert verify("whsec_x", body, header)
    assert not verify("whsec_y", body, header)
    assert not verify("whsec_x", b'{"a": 2}', header)
    assert not verify("whsec_x", body, sign("whsec_x", body, now - 3600))
    assert not verify("whsec_x", body, "garbage")


def test_backoff_doubles():
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]


@pytest.mark.django_db
def test_subscription_urls_must_be_http():
    seg = segment(GOLD)
    with pytest.raises(ApplicationError) as caught:
        webhook_subscription_create(segment=seg, url="file:///etc/passwd", events=[], actor="t")
    assert caught.value.code == "webhook_url_invalid"


@pytest.mark.django_db
def test_delivery_is_signed_retried_after_a_failure_and_logged():
    a = customer(attributes={"plan": "gold"})
    grant([a])
    seg = segment(GOLD)
    with receiver([500, 200]) as hook:
        subscription, secret = webhook_subscription_create(
            segment=seg, url=hook.url, events=["enter"], actor="t"
        )
        segment_refresh(segment_id=seg.pk)  # writes the delivery (enqueued after commit)
        delivery = WebhookDelivery.objects.get(subscription=subscription)
        assert (delivery.event, delivery.count, delivery.status) == ("enter", 1, "pending")

        assert webhook_delivery_attempt(delivery.pk) == 2  # 500: retry in 2 s
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
            DeliveryStatus.RETRYING,
            1,
            500,
        )
        assert delivery.next_retry_at is not None and delivery.customer_ids == [str(a.pk)]

        assert webhook_delivery_attempt(delivery.pk) is None  # 200: done
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
            DeliveryStatus.DELIVERED,
            2,
            200,
        )
        assert delivery.customer_ids == [] and delivery.count == 1  # no subject data kept
        assert webhook_delivery_attempt(delivery.pk) is None  # running twice sends nothing

    assert len(hook.requests) == 2
    for request in hook.requests:
        assert verify(secret, request["body"], request["headers"][SIGNATURE_HEADER.lower()])
    payload = json.loads(hook.requests[-1]["body"])
    assert payload["type"] == "segment.enter" and payload["segment_id"] == str(seg.pk)
    assert payload["customers"] == [{"customer_id": str(a.pk), "user_ids": []}]


@pytest.mark.django_db
def test_gone_receiver_fails_for_good_without_retrying():
    a = customer(attributes={"plan": "gold"})
    grant([a])
    seg = segment(GOLD)
    with receiver([410]) as hook:
        subscription, _ = webhook_subscription_create(
            segment=seg, url=hook.url, events=[], actor="t"
        )
        segment_refresh(segment_id=seg.pk)
        delivery = WebhookDelivery.objects.get(subscription=subscription)
        assert webhook_delivery_attempt(delivery.pk) is None
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.customer_ids == []


@pytest.mark.django_db
def test_unreachable_receiver_is_retried_with_the_error_class_only():
    a = customer(attributes={"plan": "gold"})
    grant([a])
    seg = segment(GOLD)
    subscription, _ = webhook_subscription_create(
        segment=seg, url="http://127.0.0.1:9/hook?token=secret", events=[], actor="t"
    )
    segment_refresh(segment_id=seg.pk)
    delivery = WebhookDelivery.objects.get(subscription=subscription)
    assert webhook_delivery_attempt(delivery.pk) == 2
    delivery.refresh_from_db()
    assert delivery.last_status_code is None
    assert delivery.last_error in ("URLError", "ConnectionRefusedError")
