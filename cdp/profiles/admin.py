"""Customers in the admin: masked everywhere, decrypted only through an audited reveal."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from cdp.audit.services import actor_for
from cdp.crypto.errors import DecryptionError
from cdp.crypto.masking import mask_email, mask_phone, mask_text
from cdp.profiles.models import Customer, Identity, IdentityKind, Merge
from cdp.profiles.resolution import customer_unmerge
from cdp.profiles.selectors import customers_matching_search
from cdp.profiles.services import customer_reveal

REVEAL_PERMISSION = "profiles.reveal_customer_pii"
UNMERGE_PERMISSION = "profiles.unmerge_customer"


def _masked(obj: Any, attribute: str, mask: Any) -> str:
    try:
        return mask(getattr(obj, attribute))
    except DecryptionError:
        return "(unreadable)"


class IdentityInline(admin.TabularInline):
    model = Identity
    extra = 0
    can_delete = False
    fields = ("kind", "namespace", "masked_value", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Identity]:
        return super().get_queryset(request).prefetch_subject_keys()

    @admin.display(description="value")
    def masked_value(self, obj: Identity) -> str:
        if obj.kind == IdentityKind.EMAIL:
            return _masked(obj, "value", mask_email)
        if obj.kind == IdentityKind.PHONE:
            return _masked(obj, "value", mask_phone)
        return _masked(obj, "value", mask_text)


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = (
        "short_id",
        "masked_email",
        "masked_phone",
        "country",
        "jurisdiction",
        "status",
        "created_at",
    )
    list_filter = ("status", "jurisdiction", "country")
    search_fields = ("=id",)
    search_help_text = "Exact e-mail, phone, user id or customer id (matched without decryption)."
    date_hierarchy = "created_at"
    inlines = [IdentityInline]
    fields = (
        "id",
        "status",
        "jurisdiction",
        "country",
        "masked_email",
        "masked_phone",
        "masked_name",
        "attributes",
        "merged_into",
        "created_at",
        "updated_at",
        "reveal_link",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Customer]:
        return super().get_queryset(request).prefetch_subject_keys()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Customer], search_term: str
    ) -> tuple[QuerySet[Customer], bool]:
        if not search_term.strip():
            return queryset, False
        matches = queryset.filter(id__in=customers_matching_search(search_term).values("id"))
        try:
            customer_id = uuid.UUID(search_term.strip())
        except ValueError:
            return matches, False
        return matches | queryset.filter(id=customer_id), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Profiles come from ingestion; an admin form would have no audited path for them.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting a customer is erasure: it must go through a data-subject request.
        return False

    @admin.display(description="id")
    def short_id(self, obj: Customer) -> str:
        return str(obj.id)[:8]

    @admin.display(description="e-mail")
    def masked_email(self, obj: Customer) -> str:
        return _masked(obj, "email", mask_email)

    @admin.display(description="phone")
    def masked_phone(self, obj: Customer) -> str:
        return _masked(obj, "phone", mask_phone)

    @admin.display(description="name")
    def masked_name(self, obj: Customer) -> str:
        first = _masked(obj, "first_name", mask_text)
        last = _masked(obj, "last_name", mask_text)
        return f"{first} {last}".strip()

    @admin.display(description="personal data")
    def reveal_link(self, obj: Customer) -> str:
        url = reverse("admin:profiles_customer_reveal", args=[obj.pk])
        consent_url = reverse("admin:consent_customer", args=[obj.pk])
        return format_html(
            '<a class="button" href="{}">Reveal (audited)</a> <a href="{}">Consent history</a>',
            url,
            consent_url,
        )

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<uuid:object_id>/reveal/",
                self.admin_site.admin_view(self.reveal_view),
                name="profiles_customer_reveal",
            ),
            *super().get_urls(),
        ]

    def reveal_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET asks for a reason; POST decrypts, after the audit entry is written."""
        if not request.user.has_perm(REVEAL_PERMISSION):
            raise PermissionDenied
        customer = get_object_or_404(Customer, pk=object_id)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": customer,
            "title": "Reveal personal data",
            "values": None,
        }
        if request.method == "POST":
            reason = request.POST.get("reason", "")
            if not reason.strip():
                messages.error(request, "Give a reason: every reveal is recorded in the audit log.")
                return redirect(request.path)
            try:
                context["values"] = customer_reveal(
                    customer=customer, actor=actor_for(request.user), reason=reason
                )
            except DecryptionError:
                messages.error(request, "The data key is destroyed or the data is damaged.")
                return redirect(reverse("admin:profiles_customer_change", args=[customer.pk]))
        return TemplateResponse(request, "admin/profiles/customer/reveal.html", context)


@admin.register(Merge)
class MergeAdmin(admin.ModelAdmin):
    """Merges are read-only records; the one change allowed is undoing one (audited)."""

    list_display = ("id", "from_short", "into_short", "rule", "created_at", "unmerged_at")
    list_filter = ("rule", "unmerged_at")
    fields = (
        "id",
        "from_customer",
        "into_customer",
        "rule",
        "actor",
        "moved_identities",
        "filled_fields",
        "created_at",
        "unmerged_at",
        "unmerged_by",
    )
    readonly_fields = fields
    actions = ["unmerge"]

    @admin.display(description="merged profile")
    def from_short(self, obj: Merge) -> str:
        return str(obj.from_customer_id)[:8]

    @admin.display(description="into")
    def into_short(self, obj: Merge) -> str:
        return str(obj.into_customer_id)[:8]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_unmerge_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(UNMERGE_PERMISSION)

    @admin.action(description="Undo the merge (restores both profiles)", permissions=["unmerge"])
    def unmerge(self, request: HttpRequest, queryset: QuerySet[Merge]) -> None:
        done = 0
        for merge in queryset.filter(unmerged_at__isnull=True):
            customer_unmerge(merge=merge, actor=actor_for(request.user))
            done += 1
        self.message_user(request, f"{done} merge(s) undone.", messages.SUCCESS)
