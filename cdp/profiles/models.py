"""The shared kernel: unified customers and the identifiers that resolve to them."""

from __future__ import annotations

import uuid

from django.db import models

from cdp.crypto.fields import EncryptedDateField, EncryptedJSONField, EncryptedTextField
from cdp.crypto.querysets import EncryptedQuerySet
from cdp.db import time_ordered_uuid
from cdp.profiles.jurisdiction import Jurisdiction


class CustomerStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    MERGED = "merged", "Merged into another profile"
    RESTRICTED = "restricted", "Processing restricted"
    ERASED = "erased", "Erased"


class Customer(models.Model):
    """A unified profile. Personal data is encrypted under the customer's own data key.

    `email_index` and `phone_index` are blind indexes (keyed HMACs of the normalised value) for
    exact lookups and deduplication without decryption. The id is a UUIDv7 (time-ordered): at a
    million profiles, random ids made every insert into the five indexes keyed by customer a
    random page (it tells when the profile was created, which `created_at` holds anyway).
    """

    id = models.UUIDField(primary_key=True, default=time_ordered_uuid, editable=False)
    status = models.CharField(
        max_length=16, choices=CustomerStatus.choices, default=CustomerStatus.ACTIVE
    )
    jurisdiction = models.CharField(
        max_length=8, choices=Jurisdiction.choices, default=Jurisdiction.OTHER
    )
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2")

    email = EncryptedTextField(null=True, blank=True)
    phone = EncryptedTextField(null=True, blank=True, help_text="E.164")
    first_name = EncryptedTextField(null=True, blank=True)
    last_name = EncryptedTextField(null=True, blank=True)
    birth_date = EncryptedDateField(null=True, blank=True)
    address = EncryptedJSONField(null=True, blank=True)
    traits = EncryptedJSONField(null=True, blank=True, help_text="Free traits, personal by default")

    email_index = models.BinaryField(null=True, blank=True, db_index=True)
    phone_index = models.BinaryField(null=True, blank=True, db_index=True)
    # Traits classified as non-personal (plan, loyalty tier, ...): plaintext for analytics.
    attributes = models.JSONField(default=dict, blank=True)

    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EncryptedQuerySet.as_manager()

    class Meta:
        permissions = [
            ("reveal_customer_pii", "Can reveal a customer's decrypted personal data"),
        ]
        indexes = [models.Index(fields=["status", "jurisdiction"])]

    def __str__(self) -> str:
        # Never personal data: this string appears in the admin, logs and audit details.
        return f"Customer {str(self.id)[:8]}"


class IdentityKind(models.TextChoices):
    USER_ID = "user_id", "User id"
    ANONYMOUS_ID = "anonymous_id", "Anonymous id"
    EMAIL = "email", "E-mail"
    PHONE = "phone", "Phone"
    EXTERNAL_ID = "external_id", "External id (per source)"


class Identity(models.Model):
    """An identifier that resolves to a customer, found by its blind index."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=16, choices=IdentityKind.choices)
    # Scope of external ids (the source that issued them); empty for global kinds.
    namespace = models.CharField(max_length=64, blank=True, default="")
    value = EncryptedTextField(subject_field="customer_id")
    value_index = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = EncryptedQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "identities"
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "namespace", "value_index"], name="identity_unique_value"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.customer}"


class MergeRule(models.TextChoices):
    IDENTIFY = "identify", "Identify linked an anonymous or contact-only profile to a user id"
    SHARED_IDENTIFIER = "shared_identifier", "Both profiles carried the same identifier"
    ALIAS = "alias", "Explicit alias call"
    MANUAL = "manual", "Merged by staff"


class Merge(models.Model):
    """`from_customer` went into `into_customer`: kept for the audit trail and for unmerge.

    `moved_identities` are the Identity rows re-keyed to the survivor; `before` holds the
    survivor's fields as they were before survivorship filled gaps from the merged profile
    (encrypted under the survivor's key), so an unmerge restores both profiles exactly.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    from_customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="merges_out")
    into_customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="merges_in")
    rule = models.CharField(max_length=32, choices=MergeRule.choices)
    actor = models.CharField(max_length=200)
    moved_identities = models.JSONField(default=list, help_text="Ids of the identities moved.")
    filled_fields = models.JSONField(
        default=list, help_text="Survivor fields that took the merged profile's value."
    )
    before = EncryptedJSONField(subject_field="into_customer_id", null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    unmerged_at = models.DateTimeField(null=True, blank=True)
    unmerged_by = models.CharField(max_length=200, blank=True)

    objects = EncryptedQuerySet.as_manager()

    class Meta:
        permissions = [("unmerge_customer", "Can undo a merge of two customer profiles")]

    def __str__(self) -> str:
        return f"Merge {str(self.from_customer_id)[:8]} into {str(self.into_customer_id)[:8]}"


class SourceRecord(models.Model):
    """One imported source row as it was mapped, encrypted under its customer's key: lineage.

    `row_index` is a blind index of the whole normalised row (unique per source), which makes
    re-uploading a file change nothing; `content_index` covers the row without its identifier
    columns, for the optional "same content" resolution rule (duplicated enrolments). The
    source is named, not referenced, so the profiles kernel does not depend on ingest.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="source_records")
    source_name = models.CharField(max_length=100)
    # Not indexed: nothing looks source records up by job, and every imported row paid for it.
    job_id = models.UUIDField(null=True, blank=True)
    row_number = models.BigIntegerField()
    row_index = models.BinaryField()
    content_index = models.BinaryField(null=True, blank=True)
    data = EncryptedJSONField(subject_field="customer_id")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = EncryptedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source_name", "row_index"], name="source_record_unique_row"
            ),
        ]
        indexes = [
            # Only rows of sources that use the content rule have a content index; the others
            # (most imports) add nothing to this index. `content_index = ANY(...)` implies the
            # condition, so the rule's lookup still uses it.
            models.Index(
                fields=["source_name", "content_index"],
                condition=models.Q(content_index__isnull=False),
                name="source_record_content",
            ),
        ]

    def __str__(self) -> str:
        return f"Row {self.row_number} of {self.source_name}"
