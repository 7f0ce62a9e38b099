"""Recipients of personal data and the notices they get (GDPR Art. 19, CCPA notice to service
providers on delete).

A recipient is a processor, service provider or partner the controller discloses personal data
to. When an erasure, rectification or restriction completes, every active recipient that takes
that kind of notice gets one: a signed webhook when it has a URL, otherwise a manual notice that
an officer marks as sent (by whatever channel the contract names). A notice names the subject
only by the pseudonymous customer id (what partners see through the API and segment webhooks)
and, for a rectification, the names of the changed fields, never the values; the ids are dropped
once the notice is finished.
"""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models

from cdp.crypto.registry import ErasureAction, erasure_policy
from cdp.privacy.models import DataSubjectRequest

NOTICE_KINDS = ("erasure", "rectification", "restriction")


def _all_kinds() -> list[str]:
    return list(NOTICE_KINDS)


class RecipientKind(models.TextChoices):
    PROCESSOR = "processor", "Processor (GDPR Art. 28)"
    SERVICE_PROVIDER = "service_provider", "Service provider or contractor (CCPA)"
    THIRD_PARTY = "third_party", "Third party"
    PARTNER = "partner", "Partner system"


class Recipient(models.Model):
    """Someone personal data is disclosed to, and how they are told of erasures and changes.

    The webhook signing secret is never stored: it is derived from the id and `secret_salt`
    (`cdp.webhooks.derived_secret`) and shown once, at creation.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=RecipientKind.choices)
    purpose = models.CharField(
        max_length=300,
        blank=True,
        help_text="What the data is disclosed for (records of processing).",
    )
    notify_url = models.URLField(
        max_length=500,
        blank=True,
        help_text="Signed webhook for notices; empty: notices are sent by hand and marked sent.",
    )
    notify_on = models.JSONField(
        default=_all_kinds,
        help_text=f"Notice kinds this recipient takes: {', '.join(NOTICE_KINDS)}.",
    )
    secret_salt = models.CharField(max_length=64, editable=False)
    is_active = models.BooleanField(default=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class NoticeStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RETRYING = "retrying", "Retrying"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (retry by hand or mark sent)"
    MANUAL = "manual", "To send by hand"
    SENT_MANUALLY = "sent_manually", "Sent by hand"


OPEN_NOTICE_STATUSES = (
    NoticeStatus.PENDING,
    NoticeStatus.RETRYING,
    NoticeStatus.FAILED,
    NoticeStatus.MANUAL,
)


class RecipientNotice(models.Model):
    """One notice of one request to one recipient, and its delivery."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    request = models.ForeignKey(
        DataSubjectRequest, on_delete=models.CASCADE, related_name="recipient_notices"
    )
    recipient = models.ForeignKey(Recipient, on_delete=models.PROTECT, related_name="notices")
    kind = models.CharField(max_length=16)
    customer_ids = ArrayField(models.UUIDField(), default=list, blank=True)
    fields = models.JSONField(default=list, blank=True, help_text="Rectification: field names.")
    lift = models.BooleanField(default=False, help_text="Restriction: lifted instead of applied.")
    status = models.CharField(max_length=16, choices=NoticeStatus.choices)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=100, blank=True)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    sent_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "recipient", "kind"], name="privacy_notice_once_per_request"
            )
        ]
        indexes = [models.Index(fields=["status", "created_at"])]
        permissions = [("send_recipientnotice", "Can retry notices and mark them sent by hand")]

    def __str__(self) -> str:
        return f"{self.kind} notice to {self.recipient}"


erasure_policy(
    "privacy.RecipientNotice",
    ErasureAction.RETAIN,
    reason=(
        "A notice to a recipient names the erased subject by the pseudonymous customer id until "
        "it is delivered (the ids are dropped then); the recipient must learn of the erasure"
    ),
    basis="GDPR Art. 19; Cal. Civ. Code 1798.105(c)",
)
