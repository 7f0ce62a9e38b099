"""Customer features, clustering runs, cluster assignments and personas.

Every row derived from a customer has a `customer` ForeignKey with CASCADE, so erasure and the
privacy package's model-graph discovery find it; consent withdrawal deletes it through the hook
registered in `segmentation.apps`. Feature rows hold analytics values only (counts, amounts,
days, a product category), never identifiers or contact data.
"""

from __future__ import annotations

import uuid

from django.db import models

# Bump when a feature's definition changes: rows computed under an older definition are
# recomputed by the next run and are never mixed with new ones in a clustering run.
FEATURE_VERSION = 1


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class FeatureRun(models.Model):
    """One computation of every consented customer's features, with its progress and counts."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    feature_version = models.PositiveSmallIntegerField(default=FEATURE_VERSION)
    as_of = models.DateTimeField(help_text="The reference time for recency and the windows.")
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    customers = models.PositiveIntegerField(default=0, help_text="Feature rows written.")
    removed = models.PositiveIntegerField(
        default=0, help_text="Rows deleted because the customer is no longer allowed."
    )
    error = models.CharField(max_length=500, blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        get_latest_by = "created_at"

    def __str__(self) -> str:
        return f"features as of {self.as_of:%Y-%m-%d %H:%M} ({self.status})"


class CustomerFeatures(models.Model):
    """One row per customer allowed for profiling; see `segmentation.selectors.FEATURE_COLUMNS`
    for each column's definition. Money is in the events' currency units, undivided."""

    customer = models.OneToOneField(
        "profiles.Customer", on_delete=models.CASCADE, primary_key=True, related_name="features"
    )
    # Which run wrote the row (provenance, and how a run finds the rows it did not write).
    # Not indexed: nothing filters on it but stale removal, which reads it in one scan, and an
    # index on a column every run rewrites would make every update non-HOT (migration 0004).
    # No database constraint: every run changes it on every row, and PostgreSQL checks a foreign
    # key per changed row (7 s of a 90 s run over 900,000 customers, at commit). The run row is
    # committed before any feature row names it, and deleting a FeatureRun through Django nulls
    # the references (SET_NULL is Django's collector either way; one scan, without the index).
    feature_run = models.ForeignKey(
        FeatureRun,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    version = models.PositiveSmallIntegerField(default=FEATURE_VERSION)
    as_of = models.DateTimeField()
    computed_at = models.DateTimeField()

    # Orders
    recency_days = models.IntegerField(null=True, blank=True)
    frequency = models.IntegerField(default=0)
    monetary = models.DecimalField(max_digits=18, decimal_places=4, default=0)
    avg_order_value = models.DecimalField(max_digits=18, decimal_places=4, null=True, blank=True)
    tenure_days = models.IntegerField(null=True, blank=True)
    days_between_orders = models.FloatField(null=True, blank=True)
    first_order_at = models.DateTimeField(null=True, blank=True)
    last_order_at = models.DateTimeField(null=True, blank=True)
    # Cancellations and returns
    refunds = models.IntegerField(default=0)
    refunded_value = models.DecimalField(max_digits=18, decimal_places=4, default=0)
    # Behaviour in windows
    views_7d = models.IntegerField(default=0)
    views_30d = models.IntegerField(default=0)
    views_90d = models.IntegerField(default=0)
    cart_adds_7d = models.IntegerField(default=0)
    cart_adds_30d = models.IntegerField(default=0)
    cart_adds_90d = models.IntegerField(default=0)
    cart_abandonments_7d = models.IntegerField(default=0)
    cart_abandonments_30d = models.IntegerField(default=0)
    cart_abandonments_90d = models.IntegerField(default=0)
    # Products
    distinct_products = models.IntegerField(default=0)
    distinct_categories = models.IntegerField(default=0)
    favourite_category = models.CharField(max_length=255, blank=True)
    # RFM (customers with at least one order; empty otherwise)
    rfm_r = models.PositiveSmallIntegerField(null=True, blank=True)
    rfm_f = models.PositiveSmallIntegerField(null=True, blank=True)
    rfm_m = models.PositiveSmallIntegerField(null=True, blank=True)
    # Not indexed: segment conditions compare it inside COALESCE and the admin counts it in one
    # GROUP BY, so no query used the index, and each run paid its maintenance.
    rfm_segment = models.CharField(max_length=32, blank=True)

    class Meta:
        verbose_name_plural = "customer features"

    def __str__(self) -> str:
        return f"features v{self.version} at {self.computed_at:%Y-%m-%d %H:%M}"


class ClusteringRun(models.Model):
    """One clustering of the current features: what was asked, what came out, how good it is."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    stage = models.CharField(max_length=64, blank=True)
    algorithm = models.CharField(max_length=32)
    params = models.JSONField(default=dict, blank=True)
    features = models.JSONField(help_text="Feature column names, in matrix order.")
    random_state = models.IntegerField(default=0)
    feature_version = models.PositiveSmallIntegerField(default=FEATURE_VERSION)
    population = models.PositiveIntegerField(default=0)
    k = models.PositiveIntegerField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    preprocessing = models.JSONField(default=dict, blank=True)
    projection = models.JSONField(
        default=dict, blank=True, help_text="A seeded sample's 2-D PCA coordinates and clusters."
    )
    previous_run = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    stability_ari = models.FloatField(
        null=True, blank=True, help_text="Adjusted Rand index against the previous run."
    )
    stability_shared = models.PositiveIntegerField(
        null=True, blank=True, help_text="Customers in both this and the previous run."
    )
    sklearn_version = models.CharField(max_length=32, blank=True)
    model = models.BinaryField(null=True, blank=True, editable=False)
    error = models.CharField(max_length=500, blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    trigger = models.CharField(max_length=16, default="admin")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        get_latest_by = "created_at"
        permissions = [("start_clusteringrun", "Can start a clustering run")]

    def __str__(self) -> str:
        return self.name or f"{self.algorithm} run {self.created_at:%Y-%m-%d %H:%M}"


class ClusterAssignment(models.Model):
    """Which cluster of a run a customer fell in (-1: noise, for DBSCAN and HDBSCAN)."""

    # A run writes one row per customer (a million in one COPY), so the table carries only the
    # indexes its reads need: (run, customer) unique, and customer for the consent purge and
    # erasure. No database-level foreign-key checks: the rows are written once, by
    # `clustering_run_execute`, from ids it has just read in the same transaction, and
    # deletion cascades through Django's collector (erasure) and the withdrawal hook; the
    # deferred per-row checks doubled the write time of a run.
    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(
        ClusteringRun,
        on_delete=models.CASCADE,
        related_name="assignments",
        db_index=False,
        db_constraint=False,
    )
    customer = models.ForeignKey(
        "profiles.Customer",
        on_delete=models.CASCADE,
        related_name="cluster_assignments",
        db_constraint=False,
    )
    cluster = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "customer"], name="cluster_assignment_unique")
        ]

    def __str__(self) -> str:
        return f"cluster {self.cluster}"


class Persona(models.Model):
    """A cluster's profile: size, medians, differences from the population, and a name."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(ClusteringRun, on_delete=models.CASCADE, related_name="personas")
    cluster = models.IntegerField()
    label = models.CharField(max_length=64, help_text="Automatic, from the medians.")
    name = models.CharField(max_length=100, blank=True, help_text="Editable; label if empty.")
    description = models.TextField(blank=True)
    size = models.PositiveIntegerField()
    share = models.FloatField()
    medians = models.JSONField(default=dict)
    difference = models.JSONField(default=dict)
    relative = models.JSONField(default=dict)

    class Meta:
        ordering = ["run", "-size", "cluster"]
        constraints = [models.UniqueConstraint(fields=["run", "cluster"], name="persona_unique")]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.name or self.label
