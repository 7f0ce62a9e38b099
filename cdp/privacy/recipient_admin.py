"""Admin for recipients (register, rotate the secret) and their notices (status, retry, mark sent
by hand). Notices show pseudonymous ids and field names only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from cdp.api.errors import ApplicationError
from cdp.audit.services import actor_for
from cdp.privacy.recipient_models import (
    NOTICE_KINDS,
    Recipient,
    RecipientNotice,
)
from cdp.privacy.recipients import (
    notice_mark_sent,
    notice_retry,
    recipient_create,
    recipient_secret_rotate,
)

SEND = "privacy.send_recipientnotice"


class RecipientForm(forms.ModelForm):
    notify_url = forms.URLField(max_length=500, required=False, assume_scheme="https")
    notify_on = forms.MultipleChoiceField(
        choices=[(k, k) for k in NOTICE_KINDS],
        initial=list(NOTICE_KINDS),
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = Recipient
        fields = ["name", "kind", "purpose", "notify_url", "notify_on", "is_active"]


@admin.register(Recipient)
class RecipientAdmin(admin.ModelAdmin):
    form = RecipientForm
    list_display = ["name", "kind", "notify_url", "notify_on", "is_active", "created_at"]
    list_filter = ["kind", "is_active"]
    actions = ["rotate_secret"]

    def save_model(self, request: HttpRequest, obj: Recipient, form: Any, change: bool) -> None:
        if change:
            obj.save()
            return
        created, secret = recipient_create(
            name=obj.name,
            kind=obj.kind,
            purpose=obj.purpose,
            notify_url=obj.notify_url,
            notify_on=form.cleaned_data["notify_on"],
            actor=actor_for(request.user),
        )
        obj.pk = created.pk
        obj.secret_salt = created.secret_salt
        obj._state.adding = False
        if secret:
            messages.warning(request, f"Signing secret (shown once, store it now): {secret}")

    @admin.action(description="Rotate the webhook signing secret", permissions=["change"])
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Recipient]) -> None:
        for recipient in queryset:
            secret = recipient_secret_rotate(recipient=recipient, actor=actor_for(request.user))
            messages.warning(request, f"New secret for {recipient} (shown once): {secret}")


@admin.register(RecipientNotice)
class RecipientNoticeAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "recipient",
        "kind",
        "request",
        "status",
        "attempts",
        "last_status_code",
        "delivered_at",
    ]
    list_filter = ["status", "kind", "recipient"]
    list_select_related = ["recipient", "request"]
    readonly_fields = [
        "request",
        "recipient",
        "kind",
        "customer_ids",
        "fields",
        "lift",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_retry_at",
        "delivered_at",
        "sent_by",
        "created_at",
    ]
    actions = ["mark_sent", "retry"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_send_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(SEND)

    def _each(self, request: HttpRequest, queryset: QuerySet[RecipientNotice], action: Any) -> int:
        done = 0
        for notice in queryset:
            try:
                action(notice=notice, actor=actor_for(request.user))
                done += 1
            except ApplicationError as exc:
                messages.error(request, f"{notice}: {exc.message}")
        return done

    @admin.action(description="Mark as sent by hand", permissions=["send"])
    def mark_sent(self, request: HttpRequest, queryset: QuerySet[RecipientNotice]) -> None:
        done = self._each(request, queryset, notice_mark_sent)
        if done:
            messages.success(request, f"{done} notice(s) marked sent.")

    @admin.action(description="Retry the webhook", permissions=["send"])
    def retry(self, request: HttpRequest, queryset: QuerySet[RecipientNotice]) -> None:
        done = self._each(request, queryset, notice_retry)
        if done:
            messages.success(request, f"{done} notice(s) queued again.")
