"""Sources, property classes, suppressions and events in the admin.

A source's write key is shown once, on the page after creation or rotation (from the session,
then forgotten); the admin never shows it again. Events are listed with their plaintext
analytics columns only; the encrypted payload is not shown here.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from cdp.audit.services import actor_for
from cdp.ingest.classification import classes_forget
from cdp.ingest.models import Event, PropertyClass, Source, Suppression
from cdp.ingest.services import (
    LIMIT_FIELDS,
    source_create,
    source_revoke,
    source_rotate_key,
)

ROTATE_PERMISSION = "ingest.rotate_write_key"


def _show_key_once(request: HttpRequest, source: Source, key: str) -> None:
    messages.warning(
        request,
        f"Write key for {source.name}: {key} — copy it now; it is stored only as a hash and "
        "will not be shown again.",
    )


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "enabled", "key_prefix", "revoked_at", "created_at")
    list_filter = ("kind", "enabled")
    search_fields = ("name",)
    readonly_fields = (
        "id",
        "key_prefix",
        "key_rotated_at",
        "previous_key_valid_until",
        "revoked_at",
        "created_at",
        "updated_at",
    )
    fields = (
        "id",
        "name",
        "kind",
        "enabled",
        "key_prefix",
        "key_rotated_at",
        "previous_key_valid_until",
        "revoked_at",
        "max_request_bytes",
        "max_message_bytes",
        "max_batch_messages",
        "max_depth",
        "max_event_age_days",
        "rate_limit_per_minute",
        "created_at",
        "updated_at",
    )
    actions = ["rotate_keys", "revoke_sources"]

    def save_model(self, request: HttpRequest, obj: Source, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        issued = source_create(
            name=obj.name,
            kind=obj.kind,
            actor=actor_for(request.user),
            **{name: getattr(obj, name) for name in LIMIT_FIELDS},
        )
        # The form's object becomes the stored row, so the admin redirects to it.
        obj.__dict__.update(issued.source.__dict__)
        obj._state.adding = False
        _show_key_once(request, obj, issued.write_key)

    @admin.action(description="Rotate the write key (old key valid 24 h)", permissions=["rotate"])
    def rotate_keys(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for source in queryset:
            issued = source_rotate_key(source=source, actor=actor_for(request.user))
            _show_key_once(request, source, issued.write_key)

    @admin.action(description="Revoke (every key stops working, for good)", permissions=["rotate"])
    def revoke_sources(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for source in queryset:
            source_revoke(source=source, actor=actor_for(request.user))
        self.message_user(request, f"{queryset.count()} source(s) revoked.")

    def has_rotate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(ROTATE_PERMISSION)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Events point at their source; revoke instead.
        return False


@admin.register(PropertyClass)
class PropertyClassAdmin(admin.ModelAdmin):
    list_display = ("key", "scope", "kind", "description", "updated_at")
    list_filter = ("scope", "kind")
    list_editable = ("kind",)
    search_fields = ("key",)

    def save_model(self, request: HttpRequest, obj: PropertyClass, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        classes_forget()


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ("kind", "reason", "created_at")
    list_filter = ("kind", "reason")
    fields = ("kind", "reason", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # written by erasure, never by hand

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("type", "name", "timestamp", "received_at", "source", "amount", "currency")
    list_filter = ("type", "source", "clamped")
    date_hierarchy = "timestamp"
    fields = (
        "id",
        "source",
        "message_id",
        "customer",
        "type",
        "name",
        "timestamp",
        "original_timestamp",
        "sent_at",
        "received_at",
        "clamped",
        "amount",
        "currency",
        "product_id",
        "properties",
    )
    readonly_fields = fields
    list_select_related = ("source",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# CSV imports (upload, mapping, progress) live in their own subpackage.
from cdp.ingest.imports import admin as _imports_admin  # noqa: E402, F401
