"""Imports in the admin: upload, mapping (guess, masked preview, correction, saved per source),
a live progress page (rows done, rows/s, time left; polled, no reload), the error report.

Registered from `cdp.ingest.admin`. Views are thin: forms, then services and selectors.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from cdp.api.errors import ApplicationError
from cdp.audit.services import actor_for
from cdp.ingest.imports.mapping import targets_for
from cdp.ingest.imports.resolve import RULES
from cdp.ingest.imports.selectors import (
    import_job_error_csv,
    import_job_preview,
    import_job_progress,
    import_job_quality,
)
from cdp.ingest.imports.services import (
    import_job_configure,
    import_job_create,
    import_source_get_or_create,
    purposes_known,
)
from cdp.ingest.models import ColumnMapping, ImportJob, ImportKind, ImportStatus


class UploadForm(forms.Form):
    file = forms.FileField()
    source = forms.CharField(max_length=100, help_text="Source name (created if new).")
    kind = forms.ChoiceField(choices=ImportKind.choices)


class OptionsForm(forms.Form):
    default_region = forms.CharField(
        max_length=2, required=False, help_text="Phone numbers without +: ISO country, e.g. GB."
    )
    day_first = forms.BooleanField(required=False, help_text="Dates like 04/09/2012 are 4 Sept.")
    currency = forms.CharField(max_length=3, required=False, help_text="ISO 4217, e.g. GBP.")
    rules = forms.CharField(
        required=False,
        help_text="Identity rules in priority order, comma-separated: " + ", ".join(RULES),
    )
    save_for_source = forms.BooleanField(
        required=False, initial=True, help_text="Reuse this mapping for the source's next files."
    )
    priority = forms.IntegerField(
        required=False, help_text="Survivorship priority of this source (higher wins)."
    )


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = (
        "short_id",
        "source",
        "kind",
        "status",
        "rows_done",
        "created",
        "updated",
        "duplicates",
        "rejected",
        "created_at",
    )
    list_filter = ("status", "kind", "source")
    list_select_related = ("source",)
    ordering = ("-created_at",)

    @admin.display(description="job")
    def short_id(self, obj: ImportJob) -> str:
        url = reverse("admin:ingest_importjob_progress", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, str(obj.pk)[:8])

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path(
                "<uuid:job_id>/mapping/", view(self.mapping_view), name="ingest_importjob_mapping"
            ),
            path(
                "<uuid:job_id>/progress/",
                view(self.progress_view),
                name="ingest_importjob_progress",
            ),
            path(
                "<uuid:job_id>/progress.json",
                view(self.progress_json),
                name="ingest_importjob_progress_json",
            ),
            path("<uuid:job_id>/errors.csv", view(self.errors_csv), name="ingest_importjob_errors"),
            *super().get_urls(),
        ]

    def _context(self, request: HttpRequest, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            **extra,
        }

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            actor = actor_for(request.user)
            source = import_source_get_or_create(name=form.cleaned_data["source"], actor=actor)
            upload = form.cleaned_data["file"]
            try:
                job = import_job_create(
                    source=source,
                    kind=form.cleaned_data["kind"],
                    file=upload,
                    file_name=upload.name or "upload.csv",
                    actor=actor,
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                if job.status == ImportStatus.FAILED:
                    messages.error(request, f"The file cannot be imported: {job.error_message}")
                    return redirect("admin:ingest_importjob_progress", job.pk)
                return redirect("admin:ingest_importjob_mapping", job.pk)
        return TemplateResponse(
            request,
            "admin/ingest/importjob/upload.html",
            self._context(request, form=form, title="Upload a CSV file"),
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        return redirect("admin:ingest_importjob_progress", object_id)

    def mapping_view(self, request: HttpRequest, job_id: Any) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        job = get_object_or_404(ImportJob.objects.select_related("source"), pk=job_id)
        if job.status != ImportStatus.MAPPING:
            return redirect("admin:ingest_importjob_progress", job.pk)
        saved = ColumnMapping.objects.filter(source=job.source, kind=job.kind).first()
        options = job.options or {}
        initial = {
            "default_region": options.get("default_region", ""),
            "day_first": options.get("day_first", False),
            "currency": options.get("currency", ""),
            "rules": ",".join(options.get("rules") or []),
            "save_for_source": True,
            "priority": saved.priority if saved else 0,
        }
        form = OptionsForm(request.POST or None, initial=initial)
        errors: dict[str, Any] = {}
        mapping = dict(job.mapping)
        if request.method == "POST":
            mapping = {h: request.POST.get(f"map-{i}", "ignore") for i, h in enumerate(job.headers)}
            if form.is_valid():
                data = form.cleaned_data
                try:
                    import_job_configure(
                        job=job,
                        mapping=mapping,
                        options={
                            "default_region": data["default_region"],
                            "day_first": data["day_first"],
                            "currency": data["currency"],
                            "rules": data["rules"] or None,
                        },
                        actor=actor_for(request.user),
                        save_for_source=data["save_for_source"],
                        priority=data["priority"],
                    )
                except ApplicationError as exc:
                    errors = {"_message": exc.message, **exc.fields}
                else:
                    return redirect("admin:ingest_importjob_progress", job.pk)
        purposes = sorted(purposes_known())
        choices = []
        for value, label in targets_for(job.kind):
            if value.endswith(":") and value.startswith("consent"):
                choices += [(f"{value}{p}", f"{label}: {p}") for p in purposes]
            elif not value.endswith(":"):
                choices.append((value, label))
        columns = []
        for index, header in enumerate(job.headers):
            target = mapping.get(header, "ignore")
            options_for = list(choices)
            if target.startswith(("attribute:", "trait:")):
                options_for.insert(0, (target, target))
            else:
                slug = target if target != "ignore" else header
                key = "".join(c if c.isalnum() else "_" for c in slug.lower()).strip("_")[:64]
                options_for += [
                    (f"attribute:{key}", f"attribute:{key}"),
                    (f"trait:{key}", f"trait:{key}"),
                ]
            columns.append(
                {
                    "index": index,
                    "header": header,
                    "target": target,
                    "choices": options_for,
                    "error": errors.get(header, ""),
                }
            )
        return TemplateResponse(
            request,
            "admin/ingest/importjob/mapping.html",
            self._context(
                request,
                job=job,
                columns=columns,
                preview=import_job_preview(job),
                form=form,
                error_message=errors.get("_message", ""),
                error_fields=[
                    ("mapping" if k == "_mapping" else k, v)
                    for k, v in errors.items()
                    if k != "_message"
                ],
                title="Map the columns",
            ),
        )

    def progress_view(self, request: HttpRequest, job_id: Any) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = get_object_or_404(ImportJob.objects.select_related("source"), pk=job_id)
        return TemplateResponse(
            request,
            "admin/ingest/importjob/progress.html",
            self._context(
                request,
                job=job,
                progress=import_job_progress(job),
                quality=import_job_quality(job),
                title=f"Import {str(job.pk)[:8]}",
            ),
        )

    def progress_json(self, request: HttpRequest, job_id: Any) -> JsonResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = get_object_or_404(ImportJob, pk=job_id)
        return JsonResponse(import_job_progress(job))

    def errors_csv(self, request: HttpRequest, job_id: Any) -> StreamingHttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = get_object_or_404(ImportJob, pk=job_id)
        response = StreamingHttpResponse(import_job_error_csv(job), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
        return response


@admin.register(ColumnMapping)
class ColumnMappingAdmin(admin.ModelAdmin):
    list_display = ("source", "kind", "priority", "updated_at", "updated_by")
    list_filter = ("kind",)
    fields = ("source", "kind", "priority", "mapping", "options", "updated_by", "updated_at")
    readonly_fields = ("source", "kind", "mapping", "options", "updated_by", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
