"""Subject data of segments: no encrypted fields; memberships are profiling results.

SegmentMembership rows (customer FK, CASCADE) are deleted on erasure (the default); pending
webhook notices hold customer ids without a FK, so erasure scrubs them through the registry.
"""

import uuid

from cdp.crypto import registry

registry.export_label(
    "segments.SegmentMembership",
    title="Segment memberships",
    explanation=(
        "You were placed in a segment when your profile and activity matched the segment's "
        "rule and your consent allowed the segment's purpose; each row is one stay."
    ),
    profiling=True,
)


def _scrub_pending_deliveries(customer_ids: list[uuid.UUID]) -> int:
    """Erasure: drop the subject from webhook notices not yet delivered (ids without a FK)."""
    from django.db.models import Q

    from segmentation.segments.models import DeliveryStatus, WebhookDelivery

    wanted = {str(i) for i in customer_ids}
    if not wanted:
        return 0
    touches = Q()
    for customer_id in wanted:
        touches |= Q(customer_ids__contains=[customer_id])
    changed = 0
    open_statuses = [DeliveryStatus.PENDING, DeliveryStatus.RETRYING]
    rows = WebhookDelivery.objects.select_for_update().filter(touches, status__in=open_statuses)
    for delivery in rows:
        delivery.customer_ids = [c for c in delivery.customer_ids if c not in wanted]
        delivery.count = len(delivery.customer_ids)
        if not delivery.customer_ids:
            delivery.status = DeliveryStatus.FAILED
            delivery.last_error = "every customer of the notice was erased before delivery"
        delivery.save(update_fields=["customer_ids", "count", "status", "last_error"])
        changed += 1
    return changed


registry.erasure_scrubber("segments.WebhookDelivery", _scrub_pending_deliveries)
