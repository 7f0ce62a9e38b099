"""Admin pages for analysts: feature runs (with the RFM grid and cohort retention), clustering
runs (start one, follow its progress, see clusters on a PCA projection and personas side by
side), and personas (rename, describe).

Only aggregates are shown: no page lists a customer's features or identifiers. Writes go
through `segmentation.services`; the pages are thin.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from cdp.api.errors import ApplicationError
from cdp.audit.services import actor_for
from segmentation import charts
from segmentation.ml.names import ALGORITHMS
from segmentation.models import ClusteringRun, FeatureRun, Persona, RunStatus
from segmentation.selectors import (
    DEFAULT_CLUSTER_FEATURES,
    NUMERIC_FEATURES,
    cohort_retention,
    feature_run_latest,
    rfm_grid,
    rfm_segment_counts,
    run_personas,
)
from segmentation.services import clustering_run_create, feature_run_create, persona_update

REFRESH_SECONDS = 3


def _progress_bar(progress: int, status: str) -> str:
    return format_html(
        '<progress class="run-progress" value="{}" max="100">{}%</progress> {}% {}',
        progress,
        progress,
        progress,
        status,
    )


@admin.register(FeatureRun)
class FeatureRunAdmin(admin.ModelAdmin):
    list_display = ("created_at", "as_of", "status", "progress_bar", "customers", "removed")
    list_filter = ("status",)
    readonly_fields = [f.name for f in FeatureRun._meta.fields]
    change_list_template = "admin/segmentation/featurerun/change_list.html"

    @admin.display(description="progress")
    def progress_bar(self, obj: FeatureRun) -> str:
        return _progress_bar(obj.progress, obj.status)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # started with the "Compute features now" button

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        return [
            path(
                "compute/",
                self.admin_site.admin_view(self.compute_view),
                name="segmentation_featurerun_compute",
            ),
            path(
                "insights/",
                self.admin_site.admin_view(self.insights_view),
                name="segmentation_featurerun_insights",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        running = FeatureRun.objects.filter(
            status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
        ).exists()
        extra = {
            "can_compute": request.user.has_perm("segmentation.add_featurerun"),
            "refresh_seconds": REFRESH_SECONDS if running else None,
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra)

    def compute_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("segmentation.add_featurerun"):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:segmentation_featurerun_changelist"))
        feature_run_create(actor=actor_for(request.user))
        messages.success(request, "Feature computation queued; this page follows its progress.")
        return HttpResponseRedirect(reverse("admin:segmentation_featurerun_changelist"))

    def insights_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        cohorts = cohort_retention()
        context = {
            **self.admin_site.each_context(request),
            "title": "Customer insights: RFM grid and cohort retention",
            "opts": self.model._meta,
            "latest": feature_run_latest(),
            "rfm_heatmap": charts.rfm_heatmap_svg(rfm_grid()),
            "rfm_segments": rfm_segment_counts(),
            "cohort_chart": charts.cohort_svg(cohorts.cohorts, cohorts.sizes, cohorts.retention),
        }
        return TemplateResponse(request, "admin/segmentation/insights.html", context)


class ClusteringRunStartForm(forms.Form):
    name = forms.CharField(max_length=100, required=False)
    algorithm = forms.ChoiceField(choices=[(a, a) for a in ALGORITHMS], initial="kmeans")
    features = forms.MultipleChoiceField(
        choices=[(f, f) for f in NUMERIC_FEATURES],
        initial=list(DEFAULT_CLUSTER_FEATURES),
        widget=forms.CheckboxSelectMultiple,
    )
    params = forms.JSONField(
        initial=dict,
        required=False,
        help_text='For example {"k_min": 2, "k_max": 8}, {"k": 5}, {"eps": 0.5}.',
    )
    random_state = forms.IntegerField(min_value=0, initial=0)


@admin.register(ClusteringRun)
class ClusteringRunAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "algorithm",
        "status",
        "progress_bar",
        "population",
        "k",
        "silhouette",
        "stability_ari",
        "created_at",
    )
    list_filter = ("status", "algorithm", "trigger")
    exclude = ("model", "projection")
    change_form_template = "admin/segmentation/clusteringrun/change_form.html"
    change_list_template = "admin/segmentation/clusteringrun/change_list.html"
    actions = ["rerun"]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).defer("model")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in ClusteringRun._meta.fields if f.name not in self.exclude]

    @admin.display(description="progress")
    def progress_bar(self, obj: ClusteringRun) -> str:
        return _progress_bar(obj.progress, obj.stage or obj.status)

    @admin.display(description="silhouette")
    def silhouette(self, obj: ClusteringRun) -> str:
        value = (obj.metrics or {}).get("silhouette")
        return "-" if value is None else f"{value:.3f}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the start form below calls the service instead of saving a model form

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        if not request.user.has_perm("segmentation.start_clusteringrun"):
            actions.pop("rerun", None)
        return actions

    @admin.action(description="Run again with the same settings")
    def rerun(self, request: HttpRequest, queryset: Any) -> None:
        actor = actor_for(request.user)
        for run in queryset:
            clustering_run_create(
                actor=actor,
                algorithm=run.algorithm,
                params=run.params,
                features=run.features,
                random_state=run.random_state,
                name=run.name,
            )
        messages.success(request, f"{queryset.count()} run(s) queued.")

    def get_urls(self) -> list[Any]:
        return [
            path(
                "start/",
                self.admin_site.admin_view(self.start_view),
                name="segmentation_clusteringrun_start",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        extra = {
            "can_start": request.user.has_perm("segmentation.start_clusteringrun"),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra)

    def start_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("segmentation.start_clusteringrun"):
            raise PermissionDenied
        form = ClusteringRunStartForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                run = clustering_run_create(
                    actor=actor_for(request.user),
                    algorithm=form.cleaned_data["algorithm"],
                    params=form.cleaned_data["params"] or {},
                    features=form.cleaned_data["features"],
                    random_state=form.cleaned_data["random_state"],
                    name=form.cleaned_data["name"],
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, "Clustering run queued.")
                return HttpResponseRedirect(
                    reverse("admin:segmentation_clusteringrun_change", args=[run.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": "Start a clustering run",
            "opts": self.model._meta,
            "form": form,
            "latest_features": feature_run_latest(),
        }
        return TemplateResponse(request, "admin/segmentation/clusteringrun/start.html", context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        run = ClusteringRun.objects.defer("model").filter(pk=object_id).first()
        extra: dict[str, Any] = dict(extra_context or {})
        if run is not None:
            extra["run"] = run
            extra["run_bar"] = _progress_bar(run.progress, run.stage or run.status)
            extra["refresh_seconds"] = (
                REFRESH_SECONDS if run.status in (RunStatus.QUEUED, RunStatus.RUNNING) else None
            )
            if run.status == RunStatus.SUCCEEDED:
                personas = list(run_personas(run=run))
                labels = {p.cluster: p.display_name for p in personas}
                projection = run.projection or {}
                extra["scatter"] = charts.scatter_svg(
                    projection.get("x", []),
                    projection.get("y", []),
                    projection.get("cluster", []),
                    labels=labels,
                )
                extra["profiles"] = charts.persona_profiles_svg(
                    [
                        {
                            "cluster": p.cluster,
                            "name": p.display_name,
                            "size": p.size,
                            "relative": p.relative,
                            "medians": p.medians,
                        }
                        for p in personas
                    ],
                    run.features,
                )
                extra["metrics_json"] = json.dumps(
                    {k: v for k, v in run.metrics.items() if k != "k_scan"}, indent=1
                )
        return super().change_view(request, object_id, form_url, extra)


class PersonaForm(forms.ModelForm):
    class Meta:
        model = Persona
        fields = ("name", "description")


@admin.register(Persona)
class PersonaAdmin(admin.ModelAdmin):
    list_display = ("display_name", "label", "run", "cluster", "size", "share_percent")
    list_filter = ("label",)
    form = PersonaForm
    readonly_fields = ("run", "cluster", "label", "size", "share", "medians", "difference")
    fields = (*readonly_fields, "name", "description")

    @admin.display(description="share")
    def share_percent(self, obj: Persona) -> str:
        return f"{obj.share:.1%}"

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("run").defer("run__model")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Persona, form: Any, change: bool) -> None:
        persona_update(
            persona=obj,
            actor=actor_for(request.user),
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
        )
