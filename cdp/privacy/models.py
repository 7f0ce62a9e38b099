"""Data-subject requests and what they produce: verifications, export packages, erasure
certificates and the erasure journal, plus Segment-style regulations from partner systems.

No model here has a foreign key to `profiles.Customer`: a request must outlive the erasure it
carries out. The subject is named by a blind index (never the plaintext identifier) and by the
pseudonymous customer id; free text is encrypted under a data key of the request itself.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from cdp.crypto.fields import EncryptedField, EncryptedJSONField, EncryptedTextField
from cdp.crypto.querysets import EncryptedQuerySet


class EncryptedBytesField(EncryptedField):
    """Raw bytes (an export archive), sealed like every other encrypted value."""

    def to_bytes(self, value: Any) -> bytes:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"{self.name!r} takes bytes, not {type(value).__name__}")
        return bytes(value)

    def from_bytes(self, data: bytes) -> bytes:
        return data


class RequestType(models.TextChoices):
    ACCESS = "access", "Access (GDPR Art. 15 / CCPA know)"
    PORTABILITY = "portability", "Portability (GDPR Art. 20)"
    ERASURE = "erasure", "Erasure (GDPR Art. 17 / CCPA delete)"
    RECTIFICATION = "rectification", "Rectification (GDPR Art. 16 / CCPA correct)"
    RESTRICTION = "restriction", "Restriction of processing (GDPR Art. 18)"
    OBJECTION = "objection", "Objection (GDPR Art. 21)"
    OPT_OUT_SALE = "opt_out_sale", "Opt-out of sale/sharing (CCPA)"


class Regime(models.TextChoices):
    GDPR = "gdpr", "GDPR"
    CCPA = "ccpa", "CCPA/CPRA"


class RequestStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    VERIFIED = "verified", "Verified"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed (see the audit log)"


OPEN_STATUSES = (RequestStatus.RECEIVED, RequestStatus.VERIFIED, RequestStatus.RUNNING)


class SubjectKind(models.TextChoices):
    EMAIL = "email", "E-mail"
    PHONE = "phone", "Phone"
    USER_ID = "user_id", "User id"
    ANONYMOUS_ID = "anonymous_id", "Anonymous id"
    CUSTOMER_ID = "customer_id", "Customer id"


class RequestChannel(models.TextChoices):
    ADMIN = "admin", "Admin"
    API = "api", "REST API (partner system)"
    REGULATION = "regulation", "Regulations API (partner system)"
    EMAIL = "email", "E-mail"
    WEB = "web", "Web form"
    PHONE = "phone", "Telephone"


class Regulation(models.Model):
    """A call to the Segment-compatible regulations endpoint: one type, up to 5,000 subjects."""

    class Type(models.TextChoices):
        SUPPRESS_ONLY = "SUPPRESS_ONLY"
        SUPPRESS_WITH_DELETE = "SUPPRESS_WITH_DELETE"
        DELETE_ONLY = "DELETE_ONLY"
        UNSUPPRESS = "UNSUPPRESS"

    class Status(models.TextChoices):
        INITIALIZED = "INITIALIZED"
        RUNNING = "RUNNING"
        PARTIAL_SUCCESS = "PARTIAL_SUCCESS"
        FAILED = "FAILED"
        FINISHED = "FINISHED"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    regulation_type = models.CharField(max_length=32, choices=Type.choices)
    subject_type = models.CharField(max_length=16)
    subject_count = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.INITIALIZED)
    actor = models.CharField(max_length=200)
    counts = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.regulation_type} {str(self.id)[:8]}"


class DataSubjectRequest(models.Model):
    """One request from a data subject (or a partner on their behalf), with its legal deadline.

    Free text (extension reason, rejection basis, rectification values) is encrypted under the
    request's own data key (`subject_field="id"`), so it can be shredded with the request.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=16, choices=RequestType.choices)
    regime = models.CharField(max_length=8, choices=Regime.choices)
    channel = models.CharField(
        max_length=16, choices=RequestChannel.choices, default=RequestChannel.ADMIN
    )
    status = models.CharField(
        max_length=16, choices=RequestStatus.choices, default=RequestStatus.RECEIVED
    )
    subject_kind = models.CharField(max_length=16, choices=SubjectKind.choices)
    subject_index = models.BinaryField(null=True, blank=True, editable=False)
    customer_id = models.UUIDField(null=True, blank=True, db_index=True, editable=False)
    subject_found = models.BooleanField(null=True, editable=False)

    received_at = models.DateTimeField(db_index=True)
    ack_due_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(db_index=True)
    extended_at = models.DateTimeField(null=True, blank=True)
    extension_reason = EncryptedTextField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    rejection_basis = EncryptedTextField(null=True, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    suppress = models.BooleanField(
        default=True, help_text="Erasure: also suppress the identifiers (later events dropped)."
    )
    lift = models.BooleanField(
        default=False, help_text="Restriction or objection: lift it instead of applying it."
    )
    changes = EncryptedJSONField(
        null=True, blank=True, help_text="Rectification: {field: new value}."
    )
    report = models.JSONField(default=dict, blank=True, help_text="Outcome (ids and counts).")
    regulation = models.ForeignKey(
        Regulation, null=True, blank=True, on_delete=models.SET_NULL, related_name="requests"
    )
    created_by = models.CharField(max_length=200)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EncryptedQuerySet.as_manager()

    class Meta:
        verbose_name = "data-subject request"
        ordering = ["due_at"]
        permissions = [
            ("verify_request", "Can record the verification of a data-subject request"),
            ("run_request", "Can run, extend, assign and reject data-subject requests"),
        ]
        indexes = [models.Index(fields=["status", "due_at"])]

    def __str__(self) -> str:
        return f"{self.get_type_display().split(' (')[0]} {str(self.id)[:8]}"

    @property
    def reference(self) -> str:
        return f"DSR-{str(self.id)[:8].upper()}"


class VerificationMethod(models.TextChoices):
    ACCOUNT = "account", "Signed-in account"
    EMAIL_CODE = "email_code", "One-time code sent to the e-mail on file"
    SMS_CODE = "sms_code", "One-time code sent to the phone on file"
    DOCUMENT = "document", "Identity document checked"
    PARTNER = "partner", "Attested by the partner system forwarding the request"
    AGENT = "agent", "Authorised agent with signed permission"
    OTHER = "other", "Other (see the evidence note)"


class Verification(models.Model):
    """How the subject's identity was verified. A one-time code is stored only as a salted hash."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    request = models.ForeignKey(
        DataSubjectRequest, on_delete=models.CASCADE, related_name="verifications"
    )
    method = models.CharField(max_length=16, choices=VerificationMethod.choices)
    evidence_note = EncryptedTextField(subject_field="request_id", null=True, blank=True)
    code_salt = models.BinaryField(null=True, blank=True, editable=False)
    code_hash = models.BinaryField(null=True, blank=True, editable=False)
    code_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    actor = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    verified_at = models.DateTimeField(null=True, blank=True)

    objects = EncryptedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_method_display()} for {self.request}"


class ExportPackage(models.Model):
    """An access/portability package: a zip (JSON, CSV per table, HTML report), encrypted."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    request = models.ForeignKey(
        DataSubjectRequest, on_delete=models.CASCADE, related_name="packages"
    )
    content = EncryptedBytesField(subject_field="request_id")
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    downloads = models.PositiveIntegerField(default=0)

    objects = EncryptedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        default_permissions = ("view", "delete")
        permissions = [("download_exportpackage", "Can download data-subject export packages")]

    def __str__(self) -> str:
        return f"package {str(self.id)[:8]}"


class ResidueSweep(models.Model):
    """One deferred residue sweep: every table read once for every erasure it covers.

    An erasure verifies at once what an index answers and what small tables hold; the columns
    it could only verify by reading a large table (unindexed ids, text, JSON) are left to the
    next sweep, which searches them for the ids and blind indexes of all erasures completed
    since the last one. `covered` lists the requests (signed with the rest); residue names the
    table, the column, the row count and the requests whose subject was found, never a value.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    covered = models.JSONField(default=list, help_text="Ids of the erasure requests covered.")
    tables_scanned = models.PositiveIntegerField(default=0)
    columns_scanned = models.PositiveIntegerField(default=0)
    residue = models.JSONField(default=list)
    exceptions = models.JSONField(default=list)
    clean = models.BooleanField()
    actor = models.CharField(max_length=200)
    signature = models.CharField(max_length=64, help_text="HMAC of the sweep's content.")

    class Meta:
        ordering = ["-started_at"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"residue sweep {str(self.id)[:8]}"


class ErasureCertificate(models.Model):
    """What an erasure deleted per table, what it kept and why, and the residue scan's result.

    `sweep_due` and `sweep` are outside the signed content: the certificate states which
    columns were left to the residue sweep; the sweep that covered them is linked here later
    and carries its own signature.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    request = models.OneToOneField(
        DataSubjectRequest, on_delete=models.PROTECT, related_name="certificate"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    deleted = models.JSONField(default=dict)
    kept = models.JSONField(default=list)
    scan = models.JSONField(default=dict)
    clean = models.BooleanField()
    keys_shredded = models.PositiveIntegerField(default=0)
    suppressions = models.PositiveIntegerField(default=0)
    signature = models.CharField(max_length=64, help_text="HMAC of the certificate's content.")
    sweep_due = models.BooleanField(
        default=False, help_text="Columns were left to the residue sweep (see scan.deferred)."
    )
    sweep = models.ForeignKey(
        ResidueSweep,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="certificates",
        help_text="The residue sweep that searched the deferred columns.",
    )

    class Meta:
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"certificate {str(self.id)[:8]}"


class ErasureJournal(models.Model):
    """Enough to erase the subject again after a database restore: ids and blind indexes only.

    `identifiers` is a list of [kind, hex blind index]. Exported with
    `manage.py replay_erasures --export FILE` to live outside the database it protects.
    """

    id = models.BigAutoField(primary_key=True)
    request = models.ForeignKey(
        DataSubjectRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    customer_ids = ArrayField(models.UUIDField(), default=list)
    identifiers = models.JSONField(default=list)
    suppress = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    replayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        default_permissions = ("view",)
        verbose_name_plural = "erasure journal"

    def __str__(self) -> str:
        return f"journal #{self.id}"
