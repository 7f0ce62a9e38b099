"""Model runs, scores, the model inventory, recommendations, rules, experiments and drift.

Rows about a person (CustomerScore, Recommendation, Assignment) have a `customer` ForeignKey with
CASCADE, so erasure and the privacy package's model-graph discovery find them; consent
withdrawal deletes them through the hook registered in `apps.py`. They hold numbers, product ids
and variant names only, never identifiers or contact data.
"""

from __future__ import annotations

import uuid

from django.db import models


class ModelKind(models.TextChoices):
    CHURN = "churn", "Churn risk"
    PROPENSITY = "propensity", "Purchase propensity"
    EXPECTED_SPEND = "expected_spend", "Expected spend"
    RECOMMENDATIONS = "recommendations", "Recommendations"


SCORE_KINDS = ("churn", "propensity", "expected_spend")
# The consent purpose each kind of model needs: scores are profiling, recommendations are
# personalization (consent's purpose codes).
PURPOSE_OF = {
    "churn": "profiling",
    "propensity": "profiling",
    "expected_spend": "profiling",
    "recommendations": "personalization",
}


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ModelRun(models.Model):
    """One training (and scoring) of a model: window, metrics, importances, the signed model."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=32, choices=ModelKind.choices)
    purpose = models.CharField(max_length=64, help_text="Consent purpose the population needs.")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    params = models.JSONField(default=dict, blank=True)
    window = models.JSONField(
        default=dict, blank=True, help_text="Training and evaluation cutoffs and the horizon."
    )
    metrics = models.JSONField(default=dict, blank=True)
    baseline = models.JSONField(default=dict, blank=True)
    importances = models.JSONField(default=dict, blank=True)
    reference = models.JSONField(
        default=dict,
        blank=True,
        help_text="A seeded sample of scores and features (no ids), for drift against later runs.",
    )
    population = models.PositiveIntegerField(default=0)
    scored = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    format_version = models.PositiveSmallIntegerField(null=True, blank=True)
    sklearn_version = models.CharField(max_length=32, blank=True)
    model = models.BinaryField(null=True, blank=True, editable=False)
    error = models.CharField(max_length=500, blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        get_latest_by = "created_at"
        permissions = [("start_modelrun", "Can start a model run")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} run {self.created_at:%Y-%m-%d %H:%M}"


class ModelInventory(models.Model):
    """Art. 22 inventory: every model that scores people, what it is for and what it uses."""

    kind = models.CharField(max_length=32, choices=ModelKind.choices, unique=True)
    name = models.CharField(max_length=100)
    purpose = models.TextField(help_text="What the output is used for.")
    consent_purpose = models.CharField(max_length=64)
    inputs = models.JSONField(default=list, help_text="The data the model uses.")
    output = models.CharField(max_length=200)
    logic = models.TextField(help_text="How it works, in words a customer can read.")
    significant_effect = models.TextField(
        blank=True, help_text="Whether decisions with legal or similar effect rely on it."
    )
    active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "model inventory entry"
        verbose_name_plural = "model inventory"
        ordering = ["kind"]

    def __str__(self) -> str:
        return self.name


class CustomerScore(models.Model):
    """The latest score of one kind for one customer (replaced by each scoring run)."""

    id = models.BigAutoField(primary_key=True)
    customer = models.ForeignKey(
        "profiles.Customer", on_delete=models.CASCADE, related_name="scores"
    )
    kind = models.CharField(max_length=32, choices=ModelKind.choices)
    score = models.FloatField()
    model_run = models.ForeignKey(
        ModelRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    scored_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "kind"], name="customer_score_unique")
        ]
        indexes = [models.Index(fields=["kind", "score"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.score:.3f}"


class Recommendation(models.Model):
    """A customer's precomputed top items from a recommendations run (served by one lookup)."""

    customer = models.OneToOneField(
        "profiles.Customer", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    model_run = models.ForeignKey(ModelRun, on_delete=models.CASCADE, related_name="+")
    items = models.JSONField(help_text="[{item, score, source}] best first.")
    computed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{len(self.items)} items"


class ScoreOp(models.TextChoices):
    GT = "gt", ">"
    GTE = "gte", ">="
    LT = "lt", "<"
    LTE = "lte", "<="


class PersonalizationRule(models.Model):
    """If the customer is in `segment` (optional) and their `score_kind` score passes the
    threshold (optional), offer `offer_key`. Lower priority numbers are tried first; two active
    rules at the same priority that can match the same customer are a conflict."""

    name = models.CharField(max_length=100)
    priority = models.PositiveIntegerField(default=100)
    segment = models.ForeignKey(
        "segments.Segment", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    score_kind = models.CharField(max_length=32, blank=True, choices=[(k, k) for k in SCORE_KINDS])
    score_op = models.CharField(max_length=4, blank=True, choices=ScoreOp.choices)
    score_threshold = models.FloatField(null=True, blank=True)
    offer_key = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["priority", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(score_kind="", score_op="", score_threshold__isnull=True)
                    | (
                        ~models.Q(score_kind="")
                        & ~models.Q(score_op="")
                        & models.Q(score_threshold__isnull=False)
                    )
                ),
                name="rule_score_condition_complete",
            )
        ]

    def __str__(self) -> str:
        return self.name


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"


class ExperimentTarget(models.TextChoices):
    DECISION = "decision", "Personalization rules (decision endpoint)"
    RECOMMENDATIONS = "recommendations", "Recommendation strategy"


class Experiment(models.Model):
    """An A/B test: customers are assigned by hash(key, customer); a holdout share gets nothing."""

    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    target = models.CharField(max_length=32, choices=ExperimentTarget.choices)
    status = models.CharField(
        max_length=16, choices=ExperimentStatus.choices, default=ExperimentStatus.DRAFT
    )
    holdout = models.FloatField(default=0.0, help_text="Share kept out of every variant.")
    conversion_event = models.CharField(max_length=255, default="Order Completed")
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Variant(models.Model):
    """One arm; the first by position is the control. `config` overrides the arm's behaviour:
    {"offer_key": ...} for decisions, {"strategy": "popularity"} for recommendations."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    name = models.SlugField(max_length=64)
    weight = models.FloatField(default=1.0)
    position = models.PositiveSmallIntegerField(default=0)
    config = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["experiment", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="variant_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


class Assignment(models.Model):
    """The variant a customer got (deterministic, recorded at first exposure)."""

    id = models.BigAutoField(primary_key=True)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="assignments")
    customer = models.ForeignKey("profiles.Customer", on_delete=models.CASCADE, related_name="+")
    variant = models.CharField(max_length=64, help_text="A variant name or 'holdout'.")
    exposed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "customer"], name="assignment_unique_customer"
            )
        ]
        indexes = [models.Index(fields=["experiment", "variant"])]

    def __str__(self) -> str:
        return self.variant


class DriftReport(models.Model):
    """PSI of one score or feature between a run and the previous run of the same kind."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(ModelRun, on_delete=models.CASCADE, related_name="drift_reports")
    previous_run = models.ForeignKey(
        ModelRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=32, choices=ModelKind.choices)
    variable = models.CharField(max_length=64, help_text="'score' or a feature name.")
    psi = models.FloatField()
    level = models.CharField(max_length=16)
    detail = models.JSONField(default=dict, help_text="Bin edges and shares, for the chart.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "variable"]

    def __str__(self) -> str:
        return f"{self.kind} {self.variable} PSI {self.psi:.3f}"


class DriftAlert(models.Model):
    """Raised when a drift report passes the threshold; acknowledged by a person."""

    id = models.BigAutoField(primary_key=True)
    report = models.OneToOneField(DriftReport, on_delete=models.CASCADE, related_name="alert")
    threshold = models.FloatField()
    message = models.CharField(max_length=300)
    acknowledged_by = models.CharField(max_length=150, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.message
