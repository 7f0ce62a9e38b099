"""The compliance officer's request queue, its actions, audited downloads and the record of
processing. No list or detail page shows a subject's identifier: requests carry only a blind
index and a pseudonymous id."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from cdp.api.errors import ApplicationError
from cdp.audit.services import actor_for
from cdp.privacy.export import export_package_download
from cdp.privacy.models import (
    OPEN_STATUSES,
    DataSubjectRequest,
    ErasureCertificate,
    ExportPackage,
    Regime,
    Regulation,
    RequestType,
    ResidueSweep,
    SubjectKind,
    VerificationMethod,
)
from cdp.privacy.ropa import ropa_csv, ropa_html, ropa_rows
from cdp.privacy.services import (
    RECTIFIABLE,
    dsr_acknowledge,
    dsr_create,
    dsr_extend,
    dsr_reject,
    dsr_run,
    dsr_verify,
)

RUN = "privacy.run_request"
VERIFY = "privacy.verify_request"
DOWNLOAD = "privacy.download_exportpackage"


class DueFilter(admin.SimpleListFilter):
    title = "deadline"
    parameter_name = "due"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("overdue", "Overdue"), ("week", "Due this week"), ("open", "All open")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = timezone.now()
        open_ = queryset.filter(status__in=OPEN_STATUSES)
        if self.value() == "overdue":
            return open_.filter(due_at__lt=now)
        if self.value() == "week":
            return open_.filter(due_at__gte=now, due_at__lt=now + dt.timedelta(days=7))
        if self.value() == "open":
            return open_
        return queryset


class RequestCreateForm(forms.Form):
    type = forms.ChoiceField(choices=RequestType.choices)
    subject_kind = forms.ChoiceField(choices=SubjectKind.choices, label="Identify the subject by")
    subject = forms.CharField(max_length=320, help_text="Stored only as a keyed hash.")
    regime = forms.ChoiceField(
        choices=[("", "From the subject's jurisdiction"), *Regime.choices], required=False
    )
    received_at = forms.DateTimeField(required=False, help_text="Default: now")
    changes = forms.JSONField(
        required=False, help_text=f"Rectification: {{field: value}} for {', '.join(RECTIFIABLE)}"
    )
    lift = forms.BooleanField(required=False, help_text="Restriction: lift it instead")


class VerifyForm(forms.Form):
    method = forms.ChoiceField(choices=VerificationMethod.choices)
    evidence_note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, help_text="Stored encrypted."
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), help_text="Stored encrypted."
    )


@admin.register(DataSubjectRequest)
class DataSubjectRequestAdmin(admin.ModelAdmin):
    list_display = (
        "reference",
        "type",
        "regime",
        "status",
        "received_at",
        "deadline",
        "ack_due_at",
        "assignee",
        "subject_found",
    )
    list_filter = (DueFilter, "status", "type", "regime", "channel", "assignee")
    date_hierarchy = "received_at"
    ordering = ("due_at",)
    list_select_related = ("assignee",)
    actions = ["run_selected"]
    change_form_template = "admin/privacy/request_change_form.html"
    change_list_template = "admin/privacy/request_change_list.html"
    fields = (
        "reference",
        "type",
        "regime",
        "channel",
        "status",
        "subject_kind",
        "subject_found",
        "received_at",
        "ack_due_at",
        "acknowledged_at",
        "due_at",
        "extended_at",
        "verified_at",
        "started_at",
        "completed_at",
        "assignee",
        "report",
        "verification_list",
        "package_links",
        "certificate_summary",
    )
    readonly_fields = tuple(f for f in fields if f != "assignee")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("privacy.add_datasubjectrequest")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="due", ordering="due_at")
    def deadline(self, obj: DataSubjectRequest) -> str:
        now = timezone.now()
        text = obj.due_at.strftime("%Y-%m-%d %H:%M")
        if obj.status not in OPEN_STATUSES:
            return text
        if obj.due_at < now:
            return format_html(
                '<strong class="dsr-overdue" style="color:#ba2121">{} overdue</strong>', text
            )
        if obj.due_at < now + dt.timedelta(days=7):
            return format_html(
                '<strong class="dsr-due-soon" style="color:#c77c00">{} this week</strong>', text
            )
        return text

    @admin.display(description="verifications")
    def verification_list(self, obj: DataSubjectRequest) -> str:
        rows = obj.verifications.all()
        return (
            format_html_join(
                "",
                "<div>{} by {} at {}{}</div>",
                (
                    (
                        v.get_method_display(),
                        v.actor,
                        v.verified_at or v.created_at,
                        "" if v.verified_at else " (code pending)",
                    )
                    for v in rows
                ),
            )
            or "-"
        )

    @admin.display(description="export packages")
    def package_links(self, obj: DataSubjectRequest) -> str:
        return (
            format_html_join(
                "",
                '<div><a href="{}">Download {} ({} bytes, audited)</a> '
                "expires {}, {} downloads</div>",
                (
                    (
                        reverse("admin:privacy_request_download", args=[obj.pk, p.pk]),
                        p,
                        p.size,
                        p.expires_at,
                        p.downloads,
                    )
                    for p in obj.packages.all()
                    if p.expires_at > timezone.now()
                ),
            )
            or "-"
        )

    @admin.display(description="erasure certificate")
    def certificate_summary(self, obj: DataSubjectRequest) -> str:
        cert = ErasureCertificate.objects.filter(request=obj).first()
        if cert is None:
            return "-"
        deleted = ", ".join(f"{k}: {v}" for k, v in cert.deleted.items()) or "nothing"
        kept = "; ".join(
            f"{k['table']} ({k['rows']}): {k.get('reason', k['action'])}" for k in cert.kept
        )
        exceptions = "; ".join(
            f"{e['table']}.{e['column']} ({e['rows']}): {e['basis']}"
            for e in cert.scan["exceptions"]
        )
        return format_html(
            "<div>Deleted: {}</div><div>Kept: {}</div><div>Scan: {} tables, {} columns, {}</div>"
            "<div>Found only in exceptions: {}</div><div>Keys shredded: {}, suppressions: {}</div>"
            "{}",
            deleted,
            kept or "nothing",
            cert.scan["tables_scanned"],
            cert.scan["columns_scanned"],
            "clean" if cert.clean else f"RESIDUE in {cert.scan['residue']}",
            exceptions or "none",
            cert.keys_shredded,
            cert.suppressions,
            self._sweep_summary(cert),
        )

    def _sweep_summary(self, cert: ErasureCertificate) -> str:
        """Which columns the erasure left to the residue sweep, and what the sweep found."""
        deferred = cert.scan.get("deferred") or []
        if not deferred:
            return ""
        columns = "; ".join(f"{d['table']} ({', '.join(d['columns'])})" for d in deferred)
        if cert.sweep is None:
            outcome = format_html('<strong class="dsr-sweep-pending">sweep pending</strong>')
        else:
            outcome = format_html(
                '<a class="dsr-sweep" href="{}">{}</a>: {}',
                reverse("admin:privacy_residuesweep_change", args=[cert.sweep_id]),
                cert.sweep,
                "clean" if cert.sweep.clean else "RESIDUE (request failed)",
            )
        return format_html(
            "<div>Verified at once: {} columns through indexes, {} tables read in full; "
            "left to the residue sweep: {} - {}</div>",
            cert.scan.get("columns_probed", 0),
            cert.scan.get("tables_read", 0),
            columns,
            outcome,
        )

    # --- actions --------------------------------------------------------------------------------
    @admin.action(description="Run the selected verified requests", permissions=["run"])
    def run_selected(self, request: HttpRequest, queryset: QuerySet[DataSubjectRequest]) -> None:
        done = 0
        for dsr in queryset:
            try:
                dsr_run(request=dsr, actor=actor_for(request.user))
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{dsr.reference}: {exc.message}", messages.WARNING)
        if done:
            self.message_user(request, f"{done} request(s) queued.", messages.SUCCESS)

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RUN)

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("<uuid:pk>/verify/", wrap(self.verify_view), name="privacy_request_verify"),
            path("<uuid:pk>/extend/", wrap(self.extend_view), name="privacy_request_extend"),
            path("<uuid:pk>/reject/", wrap(self.reject_view), name="privacy_request_reject"),
            path("<uuid:pk>/run/", wrap(self.run_view), name="privacy_request_run"),
            path("<uuid:pk>/acknowledge/", wrap(self.ack_view), name="privacy_request_ack"),
            path(
                "<uuid:pk>/download/<uuid:package>/",
                wrap(self.download_view),
                name="privacy_request_download",
            ),
            path("ropa/", wrap(self.ropa_view), name="privacy_ropa"),
            path("ropa.csv", wrap(self.ropa_csv_view), name="privacy_ropa_csv"),
            path("ropa.html", wrap(self.ropa_html_view), name="privacy_ropa_html"),
            *super().get_urls(),
        ]

    def _object(self, request: HttpRequest, pk: uuid.UUID, perm: str) -> DataSubjectRequest:
        if not request.user.has_perm(perm):
            raise PermissionDenied
        return get_object_or_404(DataSubjectRequest, pk=pk)

    def _back(self, dsr: DataSubjectRequest) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse("admin:privacy_datasubjectrequest_change", args=[dsr.pk])
        )

    def _form_page(
        self, request: HttpRequest, dsr: DataSubjectRequest | None, form: forms.Form, title: str
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": dsr,
            "form": form,
            "title": title,
        }
        return TemplateResponse(request, "admin/privacy/request_form.html", context)

    def _call(self, request: HttpRequest, dsr: DataSubjectRequest, fn: Any, done: str) -> bool:
        try:
            fn()
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return False
        self.message_user(request, f"{dsr.reference}: {done}", messages.SUCCESS)
        return True

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> Any:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = RequestCreateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            v = form.cleaned_data
            try:
                dsr = dsr_create(
                    type=v["type"],
                    subject_kind=v["subject_kind"],
                    subject_value=v["subject"],
                    actor=actor_for(request.user),
                    regime=v["regime"] or None,
                    received_at=v["received_at"],
                    changes=v["changes"] or None,
                    lift=v["lift"],
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, f"{dsr.reference} logged.", messages.SUCCESS)
                return self._back(dsr)
        return self._form_page(request, None, form, "Log a data-subject request")

    def verify_view(self, request: HttpRequest, pk: uuid.UUID) -> Any:
        dsr = self._object(request, pk, VERIFY)
        form = VerifyForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            ok = self._call(
                request,
                dsr,
                lambda: dsr_verify(
                    request=dsr,
                    method=form.cleaned_data["method"],
                    evidence_note=form.cleaned_data["evidence_note"],
                    actor=actor_for(request.user),
                ),
                "identity verified",
            )
            if ok:
                return self._back(dsr)
        return self._form_page(request, dsr, form, f"Verify {dsr.reference}")

    def extend_view(self, request: HttpRequest, pk: uuid.UUID) -> Any:
        dsr = self._object(request, pk, RUN)
        form = ReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            reason = form.cleaned_data["reason"]
            act = actor_for(request.user)
            if self._call(
                request,
                dsr,
                lambda: dsr_extend(request=dsr, reason=reason, actor=act),
                "deadline extended",
            ):
                return self._back(dsr)
        return self._form_page(request, dsr, form, f"Extend the deadline of {dsr.reference}")

    def reject_view(self, request: HttpRequest, pk: uuid.UUID) -> Any:
        dsr = self._object(request, pk, RUN)
        form = ReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            basis = form.cleaned_data["reason"]
            act = actor_for(request.user)
            if self._call(
                request, dsr, lambda: dsr_reject(request=dsr, basis=basis, actor=act), "rejected"
            ):
                return self._back(dsr)
        return self._form_page(request, dsr, form, f"Reject {dsr.reference}")

    def run_view(self, request: HttpRequest, pk: uuid.UUID) -> Any:
        dsr = self._object(request, pk, RUN)
        if request.method != "POST":
            raise PermissionDenied
        self._call(
            request, dsr, lambda: dsr_run(request=dsr, actor=actor_for(request.user)), "queued"
        )
        return self._back(dsr)

    def ack_view(self, request: HttpRequest, pk: uuid.UUID) -> Any:
        dsr = self._object(request, pk, RUN)
        if request.method != "POST":
            raise PermissionDenied
        self._call(
            request,
            dsr,
            lambda: dsr_acknowledge(request=dsr, actor=actor_for(request.user)),
            "acknowledged",
        )
        return self._back(dsr)

    def download_view(
        self, request: HttpRequest, pk: uuid.UUID, package: uuid.UUID
    ) -> HttpResponse:
        dsr = self._object(request, pk, DOWNLOAD)
        pkg = get_object_or_404(ExportPackage, pk=package, request=dsr)
        if pkg.expires_at <= timezone.now():
            raise PermissionDenied
        content = export_package_download(package=pkg, actor=actor_for(request.user))
        response = HttpResponse(content, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{dsr.reference.lower()}.zip"'
        response["Cache-Control"] = "no-store"
        return response

    def _ropa_allowed(self, request: HttpRequest) -> None:
        if not request.user.has_perm("privacy.view_datasubjectrequest"):
            raise PermissionDenied

    def ropa_view(self, request: HttpRequest) -> TemplateResponse:
        self._ropa_allowed(request)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Record of processing activities (Art. 30)",
            "rows": ropa_rows(),
        }
        return TemplateResponse(request, "admin/privacy/ropa.html", context)

    def ropa_csv_view(self, request: HttpRequest) -> HttpResponse:
        self._ropa_allowed(request)
        response = HttpResponse(ropa_csv(ropa_rows()), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="record-of-processing.csv"'
        return response

    def ropa_html_view(self, request: HttpRequest) -> HttpResponse:
        self._ropa_allowed(request)
        response = HttpResponse(ropa_html(ropa_rows()), content_type="text/html; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="record-of-processing.html"'
        return response

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Only the assignee is editable here; record the change through the service.
        from cdp.privacy.services import dsr_assign

        dsr_assign(request=obj, assignee=obj.assignee, actor=actor_for(request.user))


@admin.register(Regulation)
class RegulationAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "regulation_type",
        "subject_type",
        "subject_count",
        "status",
        "created_at",
    )
    list_filter = ("status", "regulation_type")
    readonly_fields = (
        "id",
        "regulation_type",
        "subject_type",
        "subject_count",
        "status",
        "actor",
        "counts",
        "created_at",
        "finished_at",
    )
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ResidueSweep)
class ResidueSweepAdmin(admin.ModelAdmin):
    """Deferred residue sweeps: which erasures each covered, what it read, what it found."""

    list_display = (
        "id",
        "started_at",
        "finished_at",
        "erasures",
        "tables_scanned",
        "columns_scanned",
        "outcome",
    )
    list_filter = ("clean",)
    readonly_fields = (
        "id",
        "started_at",
        "finished_at",
        "actor",
        "tables_scanned",
        "columns_scanned",
        "clean",
        "residue",
        "exceptions",
        "covered_requests",
        "signature_valid",
    )
    fields = readonly_fields

    @admin.display(description="erasures")
    def erasures(self, obj: ResidueSweep) -> int:
        return len(obj.covered)

    @admin.display(description="outcome", ordering="clean")
    def outcome(self, obj: ResidueSweep) -> str:
        if obj.clean:
            return "clean"
        return format_html(
            '<strong style="color:#ba2121">residue in {} column(s)</strong>', len(obj.residue)
        )

    @admin.display(description="requests covered")
    def covered_requests(self, obj: ResidueSweep) -> str:
        return (
            format_html_join(
                " ",
                '<a href="{}">{}</a>',
                (
                    (
                        reverse("admin:privacy_datasubjectrequest_change", args=[r]),
                        f"DSR-{r[:8].upper()}",
                    )
                    for r in obj.covered
                ),
            )
            or "-"
        )

    @admin.display(description="signature valid", boolean=True)
    def signature_valid(self, obj: ResidueSweep) -> bool:
        from cdp.privacy.sweep import sweep_verify

        return sweep_verify(obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
