"""Purposes, the consent ledger and its current-state projection.

Rows are written only by `consent.services`; the ledger (`ConsentEvent`) is append-only at the
database (migration 0002) and hash-chained with a key from configuration (`consent.ledger`).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Length
from django.db.models.lookups import Exact

from cdp.audit.chain import HASH_SIZE
from cdp.crypto.fields import EncryptedTextField
from cdp.profiles.jurisdiction import Jurisdiction


class Coverage(models.TextChoices):
    """What a purpose covers; later features ask for customers allowed for a coverage."""

    ANALYTICS = "analytics", "Analytics"
    PROFILING = "profiling", "Profiling"
    MARKETING = "marketing", "Marketing"
    SALE_SHARING = "sale_sharing", "Sale / sharing of personal information"
    PERSONALIZATION = "personalization", "Personalization"


class LegalBasis(models.TextChoices):
    CONSENT = "consent", "Consent (GDPR Art. 6(1)(a))"
    CONTRACT = "contract", "Contract (Art. 6(1)(b))"
    LEGAL_OBLIGATION = "legal_obligation", "Legal obligation (Art. 6(1)(c))"
    LEGITIMATE_INTERESTS = "legitimate_interests", "Legitimate interests (Art. 6(1)(f))"


class DefaultRule(models.TextChoices):
    OPT_IN = "opt_in", "Opt-in: not allowed until granted"
    OPT_OUT = "opt_out", "Opt-out: allowed until withdrawn"


class Channel(models.TextChoices):
    ADMIN = "admin", "Admin (on the customer's behalf)"
    API = "api", "REST API"
    IMPORT = "import", "CSV import"
    EVENT = "event", "Tracking event"
    GPC = "gpc", "Global Privacy Control"
    EXPIRY = "expiry", "Expiry"


class Purpose(models.Model):
    """Why customer data is used. Editing the notice creates a new `PurposeVersion`.

    Under GDPR every purpose is opt-in (no record means not allowed); `ccpa_default` and
    `other_default` say what an absent record means in those jurisdictions.
    """

    code = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    notice_text = models.TextField(help_text="The text shown to the customer when asking.")
    legal_basis = models.CharField(
        max_length=32, choices=LegalBasis.choices, default=LegalBasis.CONSENT
    )
    covers = ArrayField(
        models.CharField(max_length=32, choices=Coverage.choices), default=list, blank=True
    )
    ccpa_default = models.CharField(
        max_length=8, choices=DefaultRule.choices, default=DefaultRule.OPT_OUT
    )
    other_default = models.CharField(
        max_length=8, choices=DefaultRule.choices, default=DefaultRule.OPT_IN
    )
    version = models.PositiveIntegerField(default=1, editable=False)
    notice_hash = models.CharField(max_length=64, editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} v{self.version}"

    def default_for(self, jurisdiction: str) -> str:
        if jurisdiction == Jurisdiction.GDPR:
            return DefaultRule.OPT_IN
        if jurisdiction == Jurisdiction.CCPA:
            return self.ccpa_default
        return self.other_default


class PurposeVersion(models.Model):
    """A purpose's wording as it was shown: consents point at the version they were given to."""

    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    notice_text = models.TextField()
    notice_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=200)

    class Meta:
        ordering = ["purpose", "-version"]
        default_permissions = ("view",)
        constraints = [
            models.UniqueConstraint(fields=["purpose", "version"], name="purpose_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.purpose.code} v{self.version}"


class ConsentEvent(models.Model):
    """One consent decision in the append-only ledger, linked to its predecessor by a keyed hash.

    The subject is a plain UUID, not a foreign key, so the entry outlives the customer's erasure
    and still verifies: nothing here is personal data in the clear (IP and user agent are keyed
    hashes; the staff reason, if any, lives encrypted in `ConsentReason`).
    """

    seq = models.BigIntegerField(primary_key=True)
    receipt_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    customer_id = models.UUIDField(db_index=True)
    purpose_code = models.CharField(max_length=64)
    purpose_version = models.PositiveIntegerField()
    notice_hash = models.CharField(max_length=64)
    granted = models.BooleanField()
    at = models.DateTimeField(help_text="When the decision was made")
    recorded_at = models.DateTimeField(help_text="When the ledger recorded it")
    expires_at = models.DateTimeField(null=True, blank=True)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    method = models.CharField(max_length=64)
    jurisdiction = models.CharField(max_length=8, choices=Jurisdiction.choices)
    ip_hash = models.BinaryField(null=True, blank=True)
    user_agent_hash = models.BinaryField(null=True, blank=True)
    actor = models.CharField(max_length=200)
    proof = models.JSONField(default=dict, blank=True)
    prev_hash = models.BinaryField(max_length=HASH_SIZE)
    hash = models.BinaryField(max_length=HASH_SIZE)

    class Meta:
        verbose_name = "consent ledger entry"
        verbose_name_plural = "consent ledger"
        default_permissions = ("view",)
        permissions = [("record_consent", "Can record consent on a customer's behalf")]
        indexes = [models.Index(fields=["customer_id", "purpose_code", "seq"])]
        constraints = [
            models.CheckConstraint(
                condition=Exact(Length("prev_hash"), HASH_SIZE), name="consent_prev_hash_size"
            ),
            models.CheckConstraint(
                condition=Exact(Length("hash"), HASH_SIZE), name="consent_hash_size"
            ),
        ]

    def __str__(self) -> str:
        state = "granted" if self.granted else "withdrawn"
        return f"#{self.seq} {self.purpose_code} {state}"

    def chain_payload(self) -> dict[str, Any]:
        """What the entry's hash covers: every field but the hashes themselves."""
        return {
            "seq": self.seq,
            "receipt_id": self.receipt_id,
            "customer_id": self.customer_id,
            "purpose_code": self.purpose_code,
            "purpose_version": self.purpose_version,
            "notice_hash": self.notice_hash,
            "granted": self.granted,
            "at": self.at,
            "recorded_at": self.recorded_at,
            "expires_at": self.expires_at,
            "channel": self.channel,
            "method": self.method,
            "jurisdiction": self.jurisdiction,
            "ip_hash": self.ip_hash,
            "user_agent_hash": self.user_agent_hash,
            "actor": self.actor,
            "proof": self.proof,
        }


class ConsentState(models.Model):
    """The current decision per (customer, purpose): a projection of the ledger.

    Updated in the same transaction as the ledger append, and only by a decision at least as
    recent as the one it holds (an imported older decision goes into the ledger, not here).
    """

    customer = models.ForeignKey(
        "profiles.Customer", on_delete=models.CASCADE, related_name="consent_states"
    )
    purpose = models.ForeignKey(
        Purpose, to_field="code", db_column="purpose_code", on_delete=models.PROTECT
    )
    granted = models.BooleanField()
    since = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    method = models.CharField(max_length=64)
    purpose_version = models.PositiveIntegerField()
    event_seq = models.BigIntegerField()

    class Meta:
        verbose_name = "consent state"
        default_permissions = ("view",)
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "purpose"], name="consent_state_unique_customer_purpose"
            )
        ]
        indexes = [models.Index(fields=["purpose", "granted", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.purpose_id} {'granted' if self.granted else 'withdrawn'}"


class ConsentReason(models.Model):
    """The reason staff gave for a decision on a customer's behalf, encrypted for that customer.

    Free text may hold personal data, so it is not in the ledger (which only records that a reason
    was given) and it is erased with the customer.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_seq = models.BigIntegerField(unique=True)
    customer = models.ForeignKey(
        "profiles.Customer", on_delete=models.CASCADE, related_name="consent_reasons"
    )
    text = EncryptedTextField(subject_field="customer_id")

    class Meta:
        default_permissions = ()

    def __str__(self) -> str:
        return f"reason for #{self.event_seq}"
