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
    """Erasure: drop the subject from webhook notices not yet delivered (ids without a FK).

    One UPDATE (an erasure runs it every time, and it almost always finds nothing): the open
    notices that name a subject lose those ids; a notice left with none fails for good. The
    status is checked on the row being updated, so a notice a worker just delivered (and
    emptied) is not written back."""
    from django.db import connection

    from segmentation.segments.models import DeliveryStatus, WebhookDelivery

    wanted = sorted({str(i) for i in customer_ids})
    if not wanted:
        return 0
    table = connection.ops.quote_name(WebhookDelivery._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} AS d SET customer_ids = kept.ids,
                count = jsonb_array_length(kept.ids),
                status = CASE WHEN kept.ids = '[]'::jsonb THEN %(failed)s ELSE d.status END,
                last_error = CASE WHEN kept.ids = '[]'::jsonb THEN %(reason)s
                    ELSE d.last_error END
            FROM (
                SELECT w.id, coalesce(jsonb_agg(e.value ORDER BY e.n)
                    FILTER (WHERE NOT e.value #>> '{{}}' = ANY(%(wanted)s)), '[]'::jsonb) AS ids
                FROM {table} AS w,
                    jsonb_array_elements(w.customer_ids) WITH ORDINALITY AS e(value, n)
                WHERE w.status = ANY(%(open)s) AND w.customer_ids ?| %(wanted)s
                GROUP BY w.id
            ) AS kept
            WHERE d.id = kept.id AND d.status = ANY(%(open)s) AND d.customer_ids ?| %(wanted)s
            """,  # noqa: S608 - the table name is the model's, quoted; values are bound
            {
                "wanted": wanted,
                "open": [DeliveryStatus.PENDING.value, DeliveryStatus.RETRYING.value],
                "failed": DeliveryStatus.FAILED.value,
                "reason": "every customer of the notice was erased before delivery",
            },
        )
        return cursor.rowcount


registry.erasure_scrubber("segments.WebhookDelivery", _scrub_pending_deliveries)
