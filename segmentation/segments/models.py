"""Rule segments, their membership history, refresh runs and webhook subscriptions.

Membership is history, not a snapshot: a row per stay (entered_at, left_at), so "who was in S on
date D" is a query and a refresh can be undone. At most one open stay per (segment, customer), held
by a partial unique index. Rows that name a customer have a `customer` ForeignKey with CASCADE
(erasure deletes them); a consent withdrawal deletes them outright through the hook registered in
`segmentation.segments.apps` (history must not keep derived data for a withdrawn purpose).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class Segment(models.Model):
    """A named condition over customers (or a cluster of a clustering run) serving one purpose."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    purpose = models.ForeignKey(
        "consent.Purpose",
        on_delete=models.PROTECT,
        to_field="code",
        related_name="+",
        help_text="Only customers whose consent allows this purpose can be members.",
    )
    condition = models.JSONField(
        null=True,
        blank=True,
        help_text='JSON condition, e.g. {"all": [{"field": "country", "op": "eq", "value": "DE"}]}',
    )
    cluster_run = models.ForeignKey(
        "segmentation.ClusteringRun",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="With a cluster: members of that cluster of this run (and of the condition).",
    )
    cluster = models.IntegerField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    realtime = models.BooleanField(
        default=True, help_text="Re-check customers touched by new events within seconds."
    )
    refresh_interval_minutes = models.PositiveIntegerField(
        default=60, help_text="Full refresh every N minutes; 0 = only on demand."
    )
    next_refresh_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    last_refresh_added = models.PositiveIntegerField(default=0)
    last_refresh_removed = models.PositiveIntegerField(default=0)
    last_refresh_ms = models.PositiveIntegerField(default=0)
    size = models.PositiveIntegerField(default=0, help_text="Members after the last refresh.")
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("refresh_segment", "Can refresh a segment now or roll a refresh back"),
            ("preview_segment", "Can preview a segment condition's member count"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(cluster_run__isnull=True, cluster__isnull=True)
                | Q(cluster_run__isnull=False, cluster__isnull=False),
                name="segment_cluster_pair",
            ),
            models.CheckConstraint(
                condition=Q(condition__isnull=False) | Q(cluster_run__isnull=False),
                name="segment_has_rule",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class RefreshStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"


class SegmentRefresh(models.Model):
    """One full refresh: what changed and how long it took. Memberships point back at the refresh
    that opened or closed them, which is what makes a rollback exact."""

    id = models.BigAutoField(primary_key=True)
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="refreshes")
    status = models.CharField(
        max_length=16, choices=RefreshStatus.choices, default=RefreshStatus.RUNNING
    )
    trigger = models.CharField(max_length=16, default="schedule")
    requested_by = models.CharField(max_length=150, blank=True)
    added = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    size = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    rolled_back_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "segment refreshes"
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["segment", "-started_at"])]

    def __str__(self) -> str:
        return f"refresh of {self.segment} at {self.started_at:%Y-%m-%d %H:%M:%S}"


class SegmentMembership(models.Model):
    """One stay of a customer in a segment. Open while left_at is empty."""

    id = models.BigAutoField(primary_key=True)
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    customer = models.ForeignKey(
        "profiles.Customer", on_delete=models.CASCADE, related_name="segment_memberships"
    )
    entered_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)
    # The full refresh that opened / closed this stay (empty for real-time changes).
    entered_refresh = models.ForeignKey(
        SegmentRefresh, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    left_refresh = models.ForeignKey(
        SegmentRefresh, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["segment", "customer"],
                condition=Q(left_at__isnull=True),
                name="segment_membership_one_open",
            )
        ]
        # The foreign keys bring their own indexes (customer, entered/left refresh).
        indexes = [models.Index(fields=["segment", "entered_at"])]

    def __str__(self) -> str:
        return f"{self.customer} in {self.segment}"


class WebhookEvent(models.TextChoices):
    ENTER = "enter", "Customer entered"
    LEAVE = "leave", "Customer left"


def _default_events() -> list[str]:
    return [WebhookEvent.ENTER, WebhookEvent.LEAVE]


class WebhookSubscription(models.Model):
    """A partner's URL notified of enter/leave changes of one segment.

    The signing secret is never stored: it is an HMAC of the subscription id and a random salt
    under a key derived from SECRET_KEY (see `segmentation.segments.webhooks.webhook_secret`),
    shown once when created; rotating replaces the salt.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    events = models.JSONField(default=_default_events)
    secret_salt = models.CharField(max_length=64, editable=False)
    is_active = models.BooleanField(default=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"webhook {str(self.id)[:8]} of {self.segment}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    RETRYING = "retrying", "Retrying"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One notification (a batch of customers that entered or left), and its attempts.

    `customer_ids` is kept only until the delivery ends (delivered or failed for good); then it is
    emptied and `count` stays, so the log keeps no subject data longer than needed.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=8, choices=WebhookEvent.choices)
    customer_ids = models.JSONField(default=list, blank=True)
    count = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.IntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} x{self.count} ({self.status})"
