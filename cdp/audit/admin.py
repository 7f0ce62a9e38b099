"""The audit log in the admin: readable by those granted `audit.view_auditentry`, by nobody
writable. The database refuses changes anyway; the admin does not offer them.

Filters: action and date (list filters), actor (exact, e.g. `user:42`) and subject. A subject is
named by customer id, e-mail, phone or user id; the identifier is matched through blind indexes
(live identities, and the requests that named it, so an erased subject is still found by its
requests) and never stored or shown. A subject's entries are those about the customer and
about its data-subject requests."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from cdp.audit.models import AuditEntry


class InputFilter(admin.SimpleListFilter):
    """A free-text filter (Django has none built in)."""

    template = "admin/audit/input_filter.html"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("", "")]  # one dummy choice, so the filter is shown

    def choices(self, changelist: Any) -> Any:
        yield {
            "query_parts": [
                (k, v)
                for k, values in changelist.get_filters_params().items()
                if k != self.parameter_name
                for v in (values if isinstance(values, list) else [values])
            ]
        }


class ActorFilter(InputFilter):
    title = "actor"
    parameter_name = "actor"

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditEntry]) -> Any:
        value = (self.value() or "").strip()
        return queryset.filter(actor=value) if value else queryset


def subject_object_ids(term: str) -> list[str]:
    """Object ids of the entries about a subject: customer ids and their requests' ids."""
    import uuid

    from django.apps import apps

    from cdp.crypto.errors import NormalizationError
    from cdp.profiles.selectors import customers_matching_search
    from cdp.profiles.services import identifier_index

    customer_ids: set[str] = set()
    request_model = (
        apps.get_model("privacy", "DataSubjectRequest")
        if apps.is_installed("cdp.privacy")
        else None
    )
    indexes: list[bytes] = []
    try:
        customer_ids.add(str(uuid.UUID(term)))
    except ValueError:
        customer_ids.update(
            str(i) for i in customers_matching_search(term).values_list("id", flat=True)
        )
        for kind in ("email", "phone", "user_id"):
            try:
                indexes.append(identifier_index(kind, term)[1])
            except NormalizationError:
                continue
    ids = set(customer_ids)
    if request_model is not None:
        requests = request_model.objects.filter(
            Q(customer_id__in=list(customer_ids)) | Q(subject_index__in=indexes)
        ).values_list("id", "customer_id")
        for request_id, customer_id in requests:
            ids.add(str(request_id))
            if customer_id:
                ids.add(str(customer_id))
    return sorted(ids)


class SubjectFilter(InputFilter):
    """The identifier is POSTed (never in a URL, so never in an access log); the changelist
    redirects to `?subject=<object ids>`, which are pseudonymous ids only."""

    title = "subject (customer id, e-mail, phone or user id)"
    parameter_name = "subject"
    template = "admin/audit/subject_filter.html"

    def __init__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        from django.middleware.csrf import get_token

        super().__init__(request, *args, **kwargs)
        self.csrf_token = get_token(request)

    def choices(self, changelist: Any) -> Any:
        for choice in super().choices(changelist):
            yield {**choice, "csrf_token": self.csrf_token}

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditEntry]) -> Any:
        value = (self.value() or "").strip()
        if not value:
            return queryset
        return queryset.filter(object_id__in=[v for v in value.split(",") if v])


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("seq", "at", "actor", "action", "object_type", "object_id")
    list_filter = (SubjectFilter, ActorFilter, "action", "object_type", "at")
    date_hierarchy = "at"
    search_fields = ("object_id", "actor")
    search_help_text = "Exact object id or actor, e.g. user:42"
    ordering = ("-seq",)
    # COUNT(*) over millions of rows on every page load is not worth the number.
    show_full_result_count = False
    actions = None
    fields = (
        "seq",
        "at",
        "actor",
        "action",
        "object_type",
        "object_id",
        "details_json",
        "prev_hash_hex",
        "hash_hex",
    )
    readonly_fields = fields

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        term = request.POST.get("subject_lookup") if request.method == "POST" else None
        if term is not None:
            from django.http import HttpResponseRedirect
            from django.utils.http import urlencode

            params = {k: v for k, v in request.GET.items() if k != "subject"}
            params["subject"] = ",".join(subject_object_ids(term.strip())) or "none"
            return HttpResponseRedirect(f"{request.path}?{urlencode(params)}")
        return super().changelist_view(request, extra_context)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[AuditEntry], search_term: str
    ) -> tuple[QuerySet[AuditEntry], bool]:
        # Exact matches use the indexes; a substring search would scan the whole log.
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(object_id=term) | Q(actor=term)), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="details")
    def details_json(self, obj: AuditEntry) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.details, indent=2, sort_keys=True))

    @admin.display(description="previous hash")
    def prev_hash_hex(self, obj: AuditEntry) -> str:
        return bytes(obj.prev_hash).hex()

    @admin.display(description="hash")
    def hash_hex(self, obj: AuditEntry) -> str:
        return bytes(obj.hash).hex()
