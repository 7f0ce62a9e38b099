"""Real time, with a real worker: an ingested event that makes a customer qualify puts them in
the segment within seconds (the latency is read and printed); webhooks go out through Celery."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from cdp.webhooks import SIGNATURE_HEADER, verify
from segmentation.segments.models import DeliveryStatus, SegmentMembership, WebhookDelivery
from segmentation.segments.services import segment_refresh, webhook_subscription_create
from tests.ingest.conftest import basic, message
from tests.segmentation.segments.conftest import customer, grant, segment
from tests.segmentation.segments.receiver import receiver

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("ledger_emptied"),
]

CONSENTED = {
    "library": {"name": "test", "version": "1"},
    "consent": {"categoryPreferences": {"analytics": True, "marketing": True}},
}
THREE_VIEWS = {
    "event": "Product Viewed",
    "where": [{"property": "category", "op": "eq", "value": "Shoes"}],
    "within": {"days": 30},
    "op": "gte",
    "value": 3,
}


def post_batch(live_server, source, batch) -> None:
    request = urllib.request.Request(
        f"{live_server.url}/v1/batch",
        data=json.dumps({"batch": batch}).encode(),
        headers={"Content-Type": "application/json", "Authorization": basic(source.write_key)},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def wait_for(predicate, timeout: float = 30.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not true within {timeout} s")


def viewed(user_id: str) -> dict:
    return message(
        userId=user_id,
        event="Product Viewed",
        properties={"category": "Shoes"},
        context=CONSENTED,
        timestamp=None,
    )


def test_an_event_that_qualifies_a_customer_adds_them_within_seconds(
    celery_worker_process, live_server, source
):
    from cdp.ingest.classification import property_classes_seed

    property_classes_seed()
    seg = segment(THREE_VIEWS, refresh_interval_minutes=0)
    post_batch(live_server, source, [viewed("rt-1"), viewed("rt-1")])
    time.sleep(1.0)  # the worker has re-checked: two views are not enough
    assert not SegmentMembership.objects.filter(segment=seg).exists()

    sent = time.monotonic()
    post_batch(live_server, source, [viewed("rt-1")])
    wait_for(lambda: SegmentMembership.objects.filter(segment=seg, left_at__isnull=True).exists())
    latency = time.monotonic() - sent
    print(f"\nreal-time segment latency: {latency * 1000:.0f} ms")
    assert latency < 10
    seg.refresh_from_db()
    assert seg.size == 1


def test_webhook_is_delivered_by_the_worker_after_a_failed_first_attempt(celery_worker_process):
    a = customer(attributes={"plan": "gold"})
    grant([a])
    seg = segment({"field": "trait.plan", "op": "eq", "value": "gold"}, refresh_interval_minutes=0)
    with receiver([503, 200]) as hook:
        subscription, secret = webhook_subscription_create(
            segment=seg, url=hook.url, events=["enter"], actor="t"
        )
        segment_refresh(segment_id=seg.pk)
        delivery = WebhookDelivery.objects.get(subscription=subscription)
        wait_for(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == "delivered", 30)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 2)
    first, second = hook.requests
    assert verify(secret, second["body"], second["headers"][SIGNATURE_HEADER.lower()])
    assert first["headers"]["x-cdp-delivery"] == second["headers"]["x-cdp-delivery"]
