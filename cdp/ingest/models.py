"""Sources and their write keys, stored events, property classes and the suppression list.

Write keys are stored only as SHA-256 hashes. An event keeps its analytics fields (type, name,
times, amount, currency, product, non-personal properties) in plaintext and the whole original
message encrypted under its customer's data key.
"""

from __future__ import annotations

import uuid

from django.db import models

from cdp.crypto.fields import EncryptedJSONField
from cdp.crypto.querysets import EncryptedQuerySet

KIB = 1024
MIB = 1024 * KIB


class SourceKind(models.TextChoices):
    SERVER = "server", "Server-side SDK or partner system"
    WEB = "web", "Website (analytics.js)"
    MOBILE = "mobile", "Mobile app"
    HTTP = "http", "HTTP API"
    IMPORT = "import", "File import"


class Source(models.Model):
    """A partner system or channel that posts events with its own write key.

    The limits default to what the real SDKs send (rudder builds batches and single messages up
    to 4 MB): a rejected batch is not retried by the clients, so a default below that would
    lose data. They can be lowered per source.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=SourceKind.choices, default=SourceKind.SERVER)
    enabled = models.BooleanField(default=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    key_hash = models.BinaryField(max_length=32, unique=True, editable=False)
    key_prefix = models.CharField(
        max_length=12, editable=False, help_text="The first characters, to tell keys apart."
    )
    previous_key_hash = models.BinaryField(max_length=32, null=True, blank=True, editable=False)
    previous_key_valid_until = models.DateTimeField(null=True, blank=True, editable=False)
    key_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)

    # rudder closes a batch once it reaches 4 MB, so the message that crossed the line (itself
    # up to 4 MB) rides along: a real batch can reach 8 MB.
    max_request_bytes = models.PositiveIntegerField(
        default=12 * MIB, help_text="Largest decompressed request body accepted, in bytes."
    )
    max_message_bytes = models.PositiveIntegerField(
        default=4 * MIB, help_text="Largest single message (as JSON), in bytes."
    )
    max_batch_messages = models.PositiveIntegerField(default=10_000)
    max_depth = models.PositiveSmallIntegerField(
        default=32, help_text="Deepest nesting of objects and lists inside one message."
    )
    max_event_age_days = models.PositiveIntegerField(
        default=730, help_text="Events whose corrected time is older than this are rejected."
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Messages per minute; empty means no limit."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("rotate_write_key", "Can rotate or revoke a source's write key")]

    def __str__(self) -> str:
        return self.name

    @property
    def usable(self) -> bool:
        return self.enabled and self.revoked_at is None


class SourceRateWindow(models.Model):
    """Messages accepted by a source in the current one-minute window (one row per source)."""

    source = models.OneToOneField(Source, on_delete=models.CASCADE, primary_key=True)
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.count} messages since {self.window_start:%H:%M}"


class EventType(models.TextChoices):
    IDENTIFY = "identify"
    TRACK = "track"
    PAGE = "page"
    SCREEN = "screen"
    GROUP = "group"
    ALIAS = "alias"


class Event(models.Model):
    """One accepted tracking message. (source, message_id) is unique: replays are duplicates."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No separate FK indexes: (source, message_id) and (customer, timestamp) lead with them,
    # and every index costs on the hot INSERT.
    # No database constraint for the source: its check locked the one source row again for
    # every event written (6-10 us per event, on the row every concurrent batch locks too).
    # Instead a writer locks its source once (`source_lock_for_events`) and the database
    # refuses to delete a source that has events (trigger `ingest_source_protect`, migration
    # 0008): both halves of the foreign key, the insert half once per batch.
    source = models.ForeignKey(
        Source,
        on_delete=models.PROTECT,
        related_name="events",
        db_index=False,
        db_constraint=False,
    )
    message_id = models.CharField(max_length=255)
    # Nor for the customer, for the same reason (14-22 us of PostgreSQL per event: the deferred
    # check ran a locking query per row at commit). A writer locks its customers once per batch
    # FOR KEY SHARE (`customers_lock_for_events`; the tracking pipeline's consent read does it
    # too), erasure locks its customers FOR UPDATE before deleting their events, and the
    # database refuses to delete a customer that has events (trigger
    # `ingest_event_customer_protect`, migration 0009).
    customer = models.ForeignKey(
        "profiles.Customer",
        on_delete=models.CASCADE,
        related_name="events",
        db_index=False,
        db_constraint=False,
    )
    type = models.CharField(max_length=16, choices=EventType.choices)
    name = models.CharField(max_length=255, blank=True, help_text="Track event or page name.")
    timestamp = models.DateTimeField(help_text="Corrected for client clock skew.")
    original_timestamp = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField()
    clamped = models.BooleanField(
        default=False, help_text="The corrected time was over a day ahead: set to receive time."
    )
    amount = models.DecimalField(max_digits=18, decimal_places=4, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    product_id = models.CharField(max_length=255, blank=True)
    properties = models.JSONField(
        default=dict, blank=True, help_text="Only the keys classified non-personal."
    )
    payload = EncryptedJSONField(subject_field="customer_id")

    objects = EncryptedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "message_id"], name="event_unique_message")
        ]
        indexes = [
            models.Index(fields=["customer", "timestamp"]),
            models.Index(fields=["type", "name", "timestamp"]),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.name}".strip()


class PropertyClassKind(models.TextChoices):
    PERSONAL = "personal", "Personal: encrypted"
    SENSITIVE = "sensitive", "Sensitive personal: encrypted, limited use"
    NON_PERSONAL = "non_personal", "Non-personal: plaintext for analytics"


class PropertyScope(models.TextChoices):
    TRAITS = "traits", "Identify traits"
    PROPERTIES = "properties", "Event properties"
    BOTH = "both", "Both"


class PropertyClass(models.Model):
    """How a trait or property key is treated. Keys not listed here are personal (encrypted).

    Keys are matched case- and separator-insensitively (`firstName` is `first_name`).
    """

    key = models.CharField(max_length=100)
    scope = models.CharField(max_length=16, choices=PropertyScope.choices)
    kind = models.CharField(max_length=16, choices=PropertyClassKind.choices)
    description = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "property classes"
        ordering = ["scope", "key"]
        constraints = [
            models.UniqueConstraint(fields=["key", "scope"], name="property_class_unique_key")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.scope}): {self.kind}"


class Suppression(models.Model):
    """An identifier whose events must be dropped (an erased subject), by blind index only.

    Owned here until the privacy package (data-subject requests, erasure) takes it over; the
    ingestion pipeline reads it through `cdp.ingest.selectors.suppressed_indexes`.
    """

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=16)
    value_index = models.BinaryField(max_length=32)
    reason = models.CharField(max_length=64, default="erasure")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "value_index"], name="suppression_unique")
        ]
        indexes = [models.Index(fields=["value_index"])]

    def __str__(self) -> str:
        return f"suppressed {self.kind}"


# --- CSV imports (cdp.ingest.imports) ----------------------------------------------------------


class ImportKind(models.TextChoices):
    PROFILES = "profiles", "Customer profiles"
    TRANSACTIONS = "transactions", "Transactions (order lines)"


class ImportStatus(models.TextChoices):
    MAPPING = "mapping", "Waiting for a column mapping"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class ColumnMapping(models.Model):
    """A saved mapping of file headers to targets, per source and kind, reused by later uploads.

    `mapping` is {header: target}; targets are listed in `cdp.ingest.imports.mapping`. `options`
    holds the cleaning switches (default phone region, day-first dates, currency, identity rule
    order). Headers are not personal data; values never appear here.
    """

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="column_mappings")
    kind = models.CharField(max_length=16, choices=ImportKind.choices)
    mapping = models.JSONField(default=dict)
    options = models.JSONField(default=dict, blank=True)
    priority = models.IntegerField(
        default=0,
        help_text="Survivorship: a profile value set by a source of higher priority is only "
        "overwritten by sources of the same or higher priority.",
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "kind"], name="column_mapping_unique_kind")
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.kind} mapping"


class ImportJob(models.Model):
    """An uploaded CSV file, its mapping, its progress and its counts.

    The file is stored encrypted under a job data key (wrapped by the current KEK) and deleted
    once processed, unless `CDP_IMPORT_RETENTION_DAYS` keeps it. Progress is committed with every
    chunk (`rows_done`, `bytes_done`, counts), which is what makes a killed job resumable:
    rows_read = created + updated + duplicates + rejected at every commit.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="import_jobs")
    kind = models.CharField(max_length=16, choices=ImportKind.choices)
    status = models.CharField(
        max_length=16, choices=ImportStatus.choices, default=ImportStatus.MAPPING
    )
    file_name = models.CharField(max_length=255, blank=True, help_text="Not personal data.")
    file_bytes = models.BigIntegerField(default=0)
    file_sha256 = models.CharField(max_length=64, blank=True)
    stored_path = models.CharField(max_length=500, blank=True)
    kek_id = models.CharField(max_length=64, blank=True)
    wrapped_key = models.BinaryField(null=True, blank=True, editable=False)
    file_deleted_at = models.DateTimeField(null=True, blank=True)
    delete_after = models.DateTimeField(null=True, blank=True)

    encoding = models.CharField(max_length=32, blank=True)
    delimiter = models.CharField(max_length=4, blank=True)
    headers = models.JSONField(default=list, blank=True)
    mapping = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=dict, blank=True)

    rows_done = models.BigIntegerField(default=0, help_text="Data rows processed and committed.")
    bytes_done = models.BigIntegerField(default=0)
    created = models.BigIntegerField(default=0)
    updated = models.BigIntegerField(default=0)
    duplicates = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    stats = models.JSONField(default=dict, blank=True, help_text="Counts beyond the four.")
    quality = models.JSONField(default=dict, blank=True, help_text="Data-quality report.")
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)

    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    run_seconds = models.FloatField(default=0, help_text="Processing time over all attempts.")
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Import {str(self.id)[:8]} ({self.kind})"


class ImportRowError(models.Model):
    """Why a row was rejected: row number (header = 1), column and reason, never the value."""

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="row_errors")
    row = models.BigIntegerField()
    column = models.CharField(max_length=255, blank=True)
    code = models.CharField(max_length=64)
    reason = models.CharField(max_length=255)

    class Meta:
        indexes = [models.Index(fields=["job", "row"])]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"row {self.row}: {self.code}"
