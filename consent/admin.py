"""Consent in the admin: purposes (versioned), states, the ledger, a customer's consent page,
decisions on a customer's behalf, CSV imports and receipts.

Customers are shown by id, jurisdiction and status only: these screens never decrypt personal
data. Every write goes through `consent.services`; permissions: `view_consentstate` to read a
customer's page, `view_consentevent` for history and receipts, `record_consent` to change.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from cdp.audit.services import actor_for
from cdp.profiles.models import Customer
from consent.errors import ConsentError
from consent.imports import consent_import_csv
from consent.models import Channel, ConsentEvent, ConsentState, Purpose, PurposeVersion
from consent.receipts import consent_receipt
from consent.selectors import consent_history, consent_overview
from consent.services import consent_record, purpose_create, purpose_update

RECORD_PERMISSION = "consent.record_consent"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024


def _customer_link(customer_id: Any) -> str:
    url = reverse("admin:consent_customer", args=[customer_id])
    return format_html('<a href="{}">{}</a>', url, str(customer_id)[:8])


class PurposeVersionInline(admin.TabularInline):
    model = PurposeVersion
    extra = 0
    can_delete = False
    fields = ("version", "title", "notice_text", "notice_hash", "created_at", "created_by")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Purpose)
class PurposeAdmin(admin.ModelAdmin):
    list_display = ("code", "title", "version", "covers", "legal_basis", "is_active")
    list_filter = ("is_active", "legal_basis")
    search_fields = ("code", "title")
    readonly_fields = ("version", "notice_hash", "created_at", "updated_at")
    inlines = [PurposeVersionInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The code is what consents refer to: fixed once created.
        return (*self.readonly_fields, "code") if obj else self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # consents refer to purposes forever; deactivate instead

    def save_model(self, request: HttpRequest, obj: Purpose, form: Any, change: bool) -> None:
        """Through the services: an edit of the wording is a new version, and is audited."""
        actor = actor_for(request.user)
        fields = (
            "title",
            "description",
            "notice_text",
            "legal_basis",
            "covers",
            "ccpa_default",
            "other_default",
            "is_active",
        )
        values = {name: form.cleaned_data[name] for name in fields if name in form.cleaned_data}
        if change:
            saved = purpose_update(purpose=obj, actor=actor, **values)
        else:
            saved = purpose_create(code=form.cleaned_data["code"], actor=actor, **values)
        obj.pk, obj.version, obj.notice_hash = saved.pk, saved.version, saved.notice_hash

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Versions are written by the services, never through the (read-only) inline.
        for formset in formsets:
            formset.save(commit=False)


@admin.register(ConsentState)
class ConsentStateAdmin(admin.ModelAdmin):
    list_display = (
        "customer_link",
        "purpose",
        "granted",
        "since",
        "channel",
        "method",
        "purpose_version",
        "expires_at",
    )
    list_filter = ("purpose", "granted", "channel")
    search_fields = ("=customer__id",)
    search_help_text = "Exact customer id"
    date_hierarchy = "since"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="customer")
    def customer_link(self, obj: ConsentState) -> str:
        return _customer_link(obj.customer_id)

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("customer/<uuid:customer_id>/", view(self.customer_view), name="consent_customer"),
            path("import/", view(self.import_view), name="consent_import"),
            *super().get_urls(),
        ]

    def customer_view(self, request: HttpRequest, customer_id: Any) -> HttpResponse:
        """A customer's consent per purpose, the history timeline, and the decision form."""
        if not request.user.has_perm("consent.view_consentstate"):
            raise PermissionDenied
        customer = get_object_or_404(
            Customer.objects.only("id", "status", "jurisdiction", "country"), pk=customer_id
        )
        can_record = request.user.has_perm(RECORD_PERMISSION)
        form = DecisionForm(request.POST or None)
        if request.method == "POST":
            if not can_record:
                raise PermissionDenied
            if form.is_valid():
                try:
                    event = consent_record(
                        customer=customer,
                        purpose_code=form.cleaned_data["purpose"].code,
                        granted=form.cleaned_data["decision"] == "grant",
                        channel=Channel.ADMIN,
                        method=form.cleaned_data["method"],
                        actor=actor_for(request.user),
                        expires_at=form.cleaned_data.get("expires_at"),
                        reason=form.cleaned_data["reason"],
                    )
                except ConsentError as exc:
                    messages.error(request, exc.message)
                else:
                    messages.success(request, f"Recorded as ledger entry #{event.seq}.")
                    return HttpResponseRedirect(request.path)
        can_see_history = request.user.has_perm("consent.view_consentevent")
        history = list(consent_history(customer_id=customer.id)[:500]) if can_see_history else []
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Consent of customer {str(customer.id)[:8]}",
            "customer": customer,
            "overview": consent_overview(customer=customer),
            "history": history,
            "can_see_history": can_see_history,
            "can_record": can_record,
            "form": form,
        }
        return TemplateResponse(request, "admin/consent/customer_consent.html", context)

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Upload a consent CSV; the report lists row, column and reason for each bad row."""
        if not request.user.has_perm(RECORD_PERMISSION):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        report = None
        if request.method == "POST" and form.is_valid():
            report = consent_import_csv(
                file=form.cleaned_data["file"].file, actor=actor_for(request.user)
            )
            level = messages.SUCCESS if not report.errors else messages.WARNING
            messages.add_message(
                request,
                level,
                f"{report.applied} rows applied, {report.rejected} rejected of {report.rows}.",
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import consent decisions (CSV)",
            "form": form,
            "report": report,
        }
        return TemplateResponse(request, "admin/consent/import.html", context)


class DecisionForm(forms.Form):
    purpose = forms.ModelChoiceField(
        queryset=Purpose.objects.filter(is_active=True), to_field_name="code"
    )
    decision = forms.ChoiceField(choices=[("grant", "Grant"), ("withdraw", "Withdraw")])
    method = forms.RegexField(
        regex=r"^[A-Za-z0-9_.:\-]{1,64}$",
        initial="staff",
        help_text="How the customer told us: phone-call, letter, in-store...",
    )
    expires_at = forms.DateTimeField(required=False, help_text="Only for a grant; optional")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)


class ImportForm(forms.Form):
    file = forms.FileField(help_text="identifier, purpose, state, timestamp[, channel]")

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError("the file is larger than 20 MB")
        return upload


@admin.register(ConsentEvent)
class ConsentEventAdmin(admin.ModelAdmin):
    list_display = (
        "seq",
        "customer_link",
        "purpose_code",
        "purpose_version",
        "granted",
        "at",
        "channel",
        "method",
        "jurisdiction",
        "receipt_link",
    )
    list_filter = ("granted", "channel", "purpose_code", "jurisdiction")
    search_fields = ("=customer_id", "=receipt_id")
    search_help_text = "Exact customer id or receipt id"
    exclude = ("ip_hash", "user_agent_hash", "prev_hash", "hash")
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="customer")
    def customer_link(self, obj: ConsentEvent) -> str:
        return _customer_link(obj.customer_id)

    @admin.display(description="receipt")
    def receipt_link(self, obj: ConsentEvent) -> str:
        url = reverse("admin:consent_receipt", args=[obj.seq])
        return format_html('<a href="{}">JSON</a>', url)

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:seq>/receipt/",
                self.admin_site.admin_view(self.receipt_view),
                name="consent_receipt",
            ),
            *super().get_urls(),
        ]

    def receipt_view(self, request: HttpRequest, seq: int) -> HttpResponse:
        """Download the Kantara-shaped receipt of one ledger entry."""
        if not request.user.has_perm("consent.view_consentevent"):
            raise PermissionDenied
        event = get_object_or_404(ConsentEvent, seq=seq)
        purpose = Purpose.objects.filter(code=event.purpose_code).first()
        response = JsonResponse(
            consent_receipt(event, purpose), json_dumps_params={"indent": 2, "sort_keys": True}
        )
        response["Content-Disposition"] = (
            f'attachment; filename="consent-receipt-{event.receipt_id}.json"'
        )
        return response
