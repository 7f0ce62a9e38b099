"""Admin pages: model runs (metrics, importances, drift chart), the Art. 22 model inventory,
personalization rules (with conflicts flagged), experiments (variants and results), drift reports
and alerts.

Only aggregates and configuration are shown: no page lists a customer's scores or items. Writes
with side effects go through `segmentation.personalization.services`.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from cdp.api.errors import ApplicationError
from cdp.audit.services import actor_for
from segmentation.ml.names import ALERT_THRESHOLD
from segmentation.personalization import charts, services
from segmentation.personalization.models import (
    DriftAlert,
    DriftReport,
    Experiment,
    ModelInventory,
    ModelRun,
    PersonalizationRule,
    Variant,
)
from segmentation.personalization.selectors import experiment_results, rule_conflicts


def _json(value: Any) -> SafeString:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


@admin.register(ModelRun)
class ModelRunAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "status", "headline", "population", "scored")
    list_filter = ("kind", "status")
    exclude = ("model", "reference", "metrics", "baseline", "importances", "window", "params")
    readonly_fields = (
        "kind",
        "purpose",
        "status",
        "population",
        "scored",
        "removed",
        "format_version",
        "sklearn_version",
        "error",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
        "window_view",
        "metrics_view",
        "baseline_view",
        "importances_view",
        "drift_chart",
    )
    actions = ["train_again"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="headline metric")
    def headline(self, obj: ModelRun) -> str:
        m = obj.metrics or {}
        if "roc_auc" in m and m["roc_auc"] is not None:
            base = (obj.baseline or {}).get("roc_auc")
            return f"ROC-AUC {m['roc_auc']:.3f}" + (f" (recency {base:.3f})" if base else "")
        if "rmse" in m:
            return f"RMSE {m['rmse']:.2f}, R² {m['r2']:.3f}" if m.get("r2") is not None else ""
        if "model" in m:
            pop = m.get("popularity", {}).get("ndcg", 0.0)
            return f"NDCG@{m.get('k', 10)} {m['model']['ndcg']:.3f} (popularity {pop:.3f})"
        return ""

    @admin.display(description="data window")
    def window_view(self, obj: ModelRun) -> SafeString:
        return _json(obj.window)

    @admin.display(description="metrics")
    def metrics_view(self, obj: ModelRun) -> SafeString:
        return _json(obj.metrics)

    @admin.display(description="baseline")
    def baseline_view(self, obj: ModelRun) -> SafeString:
        return _json(obj.baseline)

    @admin.display(description="feature importances")
    def importances_view(self, obj: ModelRun) -> SafeString:
        rows = sorted((obj.importances or {}).items(), key=lambda kv: -kv[1])
        return format_html(
            "<table><tr><th>feature</th><th>importance</th></tr>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", rows),
        )

    @admin.display(description="drift against the previous run")
    def drift_chart(self, obj: ModelRun) -> SafeString:
        reports = obj.drift_reports.order_by("variable")
        return charts.psi_bars(
            [(r.variable, r.psi) for r in reports],
            threshold=ALERT_THRESHOLD,
            title=f"PSI of {obj.get_kind_display()} run",
        )

    @admin.action(description="Train these kinds again", permissions=["start"])
    def train_again(self, request: HttpRequest, queryset: QuerySet[ModelRun]) -> None:
        for kind in sorted(set(queryset.values_list("kind", flat=True))):
            services.model_run_create(kind=kind, actor=actor_for(request.user))
        self.message_user(request, "Training queued.", messages.SUCCESS)

    def has_start_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("personalization.start_modelrun")


@admin.register(ModelInventory)
class ModelInventoryAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "consent_purpose", "output", "active")
    readonly_fields = ("updated_at",)


@admin.register(PersonalizationRule)
class PersonalizationRuleAdmin(admin.ModelAdmin):
    list_display = (
        "priority",
        "name",
        "segment",
        "score_kind",
        "score_op",
        "score_threshold",
        "offer_key",
        "is_active",
    )
    list_display_links = ("name",)
    list_filter = ("is_active",)
    ordering = ("priority", "id")

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        for conflict in rule_conflicts():
            self.message_user(request, f"Conflict: {conflict.message}.", messages.WARNING)
        return super().changelist_view(request, extra_context)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        for conflict in rule_conflicts():
            if obj.pk in (conflict.first.pk, conflict.second.pk):
                self.message_user(request, f"Conflict: {conflict.message}.", messages.WARNING)


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 2
    fields = ("position", "name", "weight", "config")


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ("name", "key", "target", "status", "holdout", "started_at")
    list_filter = ("status", "target")
    inlines = [VariantInline]
    readonly_fields = ("status", "started_at", "stopped_at", "results")
    actions = ["start", "stop"]

    @admin.display(description="results")
    def results(self, obj: Experiment) -> SafeString:
        if obj.pk is None:
            return format_html("<p>{}</p>", "Save the experiment first.")
        res = experiment_results(obj)

        def pct(v: float | None) -> str:
            return "-" if v is None else f"{v * 100:.2f}%"

        rows = []
        for r in res.rows:
            up = r["uplift"]
            rows.append(
                (
                    r["variant"],
                    r["exposed"],
                    r["converted"],
                    pct(r["rate"]),
                    "control"
                    if r["variant"] == res.control
                    else (
                        f"{up['absolute'] * 100:+.2f} pp [{up['ci_low'] * 100:+.2f}, "
                        f"{up['ci_high'] * 100:+.2f}] p={up['p_value']:.3f}"
                        if up
                        else "-"
                    ),
                )
            )
        warning = (
            format_html(
                '<p style="color:#ba2121"><strong>Sample ratio mismatch</strong>: '
                "chi² {:.1f}, p {:.2g}. Do not trust these results.</p>",
                res.srm.chi2,
                res.srm.p_value,
            )
            if res.srm.mismatch
            else format_html("<p>{}</p>", f"Sample ratio check: p = {res.srm.p_value:.3f}")
        )
        return format_html(
            "<table><tr><th>variant</th><th>exposed</th><th>converted</th><th>rate</th>"
            "<th>uplift vs control (95% CI)</th></tr>{}</table>{}",
            format_html_join(
                "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows
            ),
            warning,
        )

    @admin.action(description="Start the selected experiments", permissions=["change"])
    def start(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        for experiment in queryset:
            try:
                services.experiment_start(experiment=experiment, actor=actor_for(request.user))
            except ApplicationError as exc:
                self.message_user(request, f"{experiment}: {exc.message}", messages.ERROR)

    @admin.action(description="Stop the selected experiments", permissions=["change"])
    def stop(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        for experiment in queryset:
            services.experiment_stop(experiment=experiment, actor=actor_for(request.user))


@admin.register(DriftReport)
class DriftReportAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "variable", "psi_display", "level")
    list_filter = ("kind", "level")
    exclude = ("detail",)
    readonly_fields = ("run", "previous_run", "kind", "variable", "psi", "level", "chart")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="PSI", ordering="psi")
    def psi_display(self, obj: DriftReport) -> str:
        return f"{obj.psi:.3f}"

    @admin.display(description="distribution")
    def chart(self, obj: DriftReport) -> SafeString:
        detail = obj.detail or {}
        return charts.share_bars(
            detail.get("expected_share", []),
            detail.get("actual_share", []),
            title=f"{obj.variable}: previous vs current",
        )


@admin.register(DriftAlert)
class DriftAlertAdmin(admin.ModelAdmin):
    list_display = ("created_at", "message", "acknowledged_by", "acknowledged_at")
    readonly_fields = ("report", "threshold", "message", "acknowledged_by", "acknowledged_at")
    actions = ["acknowledge"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Acknowledge the selected alerts", permissions=["change"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[DriftAlert]) -> None:
        for alert in queryset.filter(acknowledged_at__isnull=True):
            services.drift_alert_acknowledge(alert=alert, actor=actor_for(request.user))
