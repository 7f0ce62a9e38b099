"""Reads of features, clustering runs and personas, and the feature catalogue.

`FEATURE_COLUMNS` is the one description of the per-customer features: the clustering form and
API offer these names, and rule segments (`segmentation.segments`) validate feature conditions
against them (name, type, help).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Count, QuerySet

from segmentation.models import ClusteringRun, CustomerFeatures, FeatureRun, Persona, RunStatus


@dataclass(frozen=True)
class FeatureColumn:
    """One column of `segmentation.CustomerFeatures`. `type` is "int", "decimal", "float" or
    "str"; `numeric` features can be clustered; `nullable` ones are empty without orders."""

    name: str
    type: str
    help: str
    nullable: bool = False

    @property
    def numeric(self) -> bool:
        return self.type != "str"


_W = "in the last {} days before the run's reference time"

FEATURE_COLUMNS: tuple[FeatureColumn, ...] = (
    FeatureColumn("recency_days", "int", "Days since the last order.", nullable=True),
    FeatureColumn("frequency", "int", "Distinct orders (Order Completed, by order id)."),
    FeatureColumn("monetary", "decimal", "Sum of order line amounts, non-product lines included."),
    FeatureColumn("avg_order_value", "decimal", "Monetary value / frequency.", nullable=True),
    FeatureColumn("tenure_days", "int", "Days since the first order.", nullable=True),
    FeatureColumn(
        "days_between_orders",
        "float",
        "Mean days between orders: (last - first order) / (orders - 1).",
        nullable=True,
    ),
    FeatureColumn("refunds", "int", "Distinct cancelled or returned orders (Order Refunded)."),
    FeatureColumn("refunded_value", "decimal", "Sum of refunded amounts, as a positive number."),
    *(
        FeatureColumn(f"views_{n}d", "int", f"Product Viewed events {_W.format(n)}.")
        for n in (7, 30, 90)
    ),
    *(
        FeatureColumn(f"cart_adds_{n}d", "int", f"Product Added events {_W.format(n)}.")
        for n in (7, 30, 90)
    ),
    *(
        FeatureColumn(
            f"cart_abandonments_{n}d",
            "int",
            f"Days with a cart add and no order on the same (UTC) day, {_W.format(n)}.",
        )
        for n in (7, 30, 90)
    ),
    FeatureColumn("distinct_products", "int", "Distinct products bought (product lines only)."),
    FeatureColumn("distinct_categories", "int", "Distinct categories bought (product lines)."),
    FeatureColumn(
        "favourite_category", "str", "The category with most product lines bought (ties: A-Z)."
    ),
    FeatureColumn("rfm_r", "int", "Recency quintile, 5 = most recent.", nullable=True),
    FeatureColumn("rfm_f", "int", "Frequency quintile, 5 = most frequent.", nullable=True),
    FeatureColumn("rfm_m", "int", "Monetary quintile, 5 = highest spend.", nullable=True),
    FeatureColumn("rfm_segment", "str", "RFM segment name from the R and F scores."),
)

FEATURES_BY_NAME: dict[str, FeatureColumn] = {c.name: c for c in FEATURE_COLUMNS}
NUMERIC_FEATURES: tuple[str, ...] = tuple(c.name for c in FEATURE_COLUMNS if c.numeric)
DEFAULT_CLUSTER_FEATURES: tuple[str, ...] = (
    "recency_days",
    "frequency",
    "monetary",
    "avg_order_value",
    "tenure_days",
    "refunds",
    "views_30d",
    "cart_adds_30d",
)


def feature_run_latest() -> FeatureRun | None:
    return FeatureRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("-created_at").first()


def clustering_run_previous(*, run: ClusteringRun) -> ClusteringRun | None:
    """The last successful run before `run` with the same feature version (for stability)."""
    return (
        ClusteringRun.objects.filter(
            status=RunStatus.SUCCEEDED,
            created_at__lt=run.created_at,
            feature_version=run.feature_version,
        )
        .exclude(pk=run.pk)
        .order_by("-created_at")
        .first()
    )


def run_personas(*, run: ClusteringRun) -> QuerySet[Persona]:
    return Persona.objects.filter(run=run).order_by("-size", "cluster")


def run_status(*, run: ClusteringRun) -> dict[str, Any]:
    """What the API and the admin's progress poll show for a run (no per-customer data)."""
    return {
        "id": str(run.id),
        "status": run.status,
        "progress": run.progress,
        "stage": run.stage,
        "algorithm": run.algorithm,
        "params": run.params,
        "features": run.features,
        "population": run.population,
        "k": run.k,
        "metrics": run.metrics,
        "stability_ari": run.stability_ari,
        "sklearn_version": run.sklearn_version,
        "error": run.error,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def rfm_grid() -> dict[tuple[int, int], int]:
    """Customers per (R, F) score pair, for the heatmap (one GROUP BY)."""
    rows = (
        CustomerFeatures.objects.filter(rfm_r__isnull=False)
        .values_list("rfm_r", "rfm_f")
        .annotate(n=Count("*"))
    )
    return {(r, f): n for r, f, n in rows}


def rfm_segment_counts() -> list[tuple[str, int]]:
    rows = (
        CustomerFeatures.objects.exclude(rfm_segment="")
        .values_list("rfm_segment")
        .annotate(n=Count("*"))
        .order_by("-n")
    )
    return [(name, n) for name, n in rows]


@dataclass(frozen=True)
class CohortRetention:
    cohorts: list[str]
    sizes: list[int]
    retention: list[list[float | None]]


def cohort_retention(*, max_cohorts: int = 12) -> CohortRetention:
    """Share of each acquisition month's customers (first order, profiling-consented: those
    with features) who ordered again N months later, for the latest `max_cohorts` months."""
    sql = """
WITH c AS (
    SELECT customer_id, date_trunc('month', first_order_at AT TIME ZONE 'UTC') AS cohort
    FROM segmentation_customerfeatures WHERE first_order_at IS NOT NULL
),
recent AS (
    SELECT * FROM c WHERE cohort > (SELECT max(cohort) FROM c) - make_interval(months => %s)
),
act AS (
    SELECT DISTINCT e.customer_id, date_trunc('month', e.timestamp AT TIME ZONE 'UTC') AS month
    FROM ingest_event e JOIN recent r ON r.customer_id = e.customer_id
    WHERE e.type = 'track' AND e.name = 'Order Completed'
)
SELECT r.cohort, (extract(year FROM age(a.month, r.cohort)) * 12
    + extract(month FROM age(a.month, r.cohort)))::int AS since, count(*)
FROM act a JOIN recent r ON r.customer_id = a.customer_id
WHERE a.month >= r.cohort
GROUP BY 1, 2 ORDER BY 1, 2
"""
    with connection.cursor() as cursor:
        cursor.execute(sql, [max_cohorts])
        rows = cursor.fetchall()
    by_cohort: dict[Any, dict[int, int]] = {}
    for cohort, since, n in rows:
        by_cohort.setdefault(cohort, {})[since] = n
    cohorts = sorted(by_cohort)
    if not cohorts:
        return CohortRetention([], [], [])
    last = cohorts[-1]
    out = CohortRetention([], [], [])
    for cohort in cohorts:
        counts = by_cohort[cohort]
        size = counts.get(0, 0)
        span = (last.year - cohort.year) * 12 + last.month - cohort.month
        out.cohorts.append(f"{cohort:%Y-%m}")
        out.sizes.append(size)
        out.retention.append([counts.get(m, 0) / size if size else None for m in range(span + 1)])
    return out
