"""The audit log in the admin: readable by those granted `audit.view_auditentry`, by nobody
writable. The database refuses changes anyway; the admin does not offer them."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from cdp.audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("seq", "at", "actor", "action", "object_type", "object_id")
    list_filter = ("action", "at")
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
