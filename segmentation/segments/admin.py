"""Segments in the admin: edit with validation, preview count, refresh now, rollback, member
history on a date and the size chart. Views and actions only call services and selectors."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from cdp.api.errors import ApplicationError
from cdp.audit.services import actor_for
from segmentation.segments.charts import size_chart_svg
from segmentation.segments.conditions import ConditionError
from segmentation.segments.models import (
    Segment,
    SegmentMembership,
    SegmentRefresh,
    WebhookDelivery,
    WebhookSubscription,
)
from segmentation.segments.selectors import (
    SegmentRule,
    segment_members_on,
    segment_preview_count,
    segment_size_series,
)
from segmentation.segments.services import (
    segment_refresh,
    segment_refresh_rollback,
    segment_rule_check,
    segment_save,
    webhook_subscription_create,
)


class SegmentForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = [
            "name",
            "description",
            "purpose",
            "condition",
            "cluster_run",
            "cluster",
            "enabled",
            "realtime",
            "refresh_interval_minutes",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        purpose = data.get("purpose")
        run = data.get("cluster_run")
        rule = SegmentRule(
            purpose_code=purpose.code if purpose else "",
            condition=data.get("condition"),
            cluster_run_id=run.pk if run else None,
            cluster=data.get("cluster"),
        )
        try:
            segment_rule_check(rule)
        except ConditionError as exc:
            self.add_error("condition", ValidationError(exc.errors))
        except ApplicationError as exc:
            raise ValidationError(exc.fields.get("segment") or exc.message) from None
        return data


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentForm
    change_form_template = "admin/segments/segment/change_form.html"
    list_display = [
        "name",
        "purpose",
        "enabled",
        "size",
        "last_refreshed_at",
        "last_refresh_added",
        "last_refresh_removed",
        "refresh_interval_minutes",
    ]
    list_filter = ["enabled", "purpose"]
    search_fields = ["name"]
    actions = ["refresh_now"]
    readonly_fields = [
        "size",
        "last_refreshed_at",
        "last_refresh_added",
        "last_refresh_removed",
        "last_refresh_ms",
        "next_refresh_at",
        "created_by",
    ]

    def save_model(self, request: HttpRequest, obj: Segment, form: Any, change: bool) -> None:
        segment_save(segment=obj, actor=actor_for(request.user))

    def _can_refresh(self, request: HttpRequest) -> bool:
        return request.user.has_perm("segments.refresh_segment")

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        if not self._can_refresh(request):
            actions.pop("refresh_now", None)
        return actions

    @admin.action(description="Refresh now")
    def refresh_now(self, request: HttpRequest, queryset: Any) -> None:
        actor = actor_for(request.user)
        for segment in queryset:
            refresh = segment_refresh(segment_id=segment.pk, actor=actor, trigger="admin")
            self._report(request, segment, refresh)

    def _report(self, request: HttpRequest, segment: Segment, refresh: Any) -> None:
        if refresh is None:
            messages.warning(request, f"{segment}: disabled, not refreshed.")
        elif refresh.status == "failed":
            messages.error(request, f"{segment}: refresh failed: {refresh.error}")
        else:
            messages.success(
                request,
                f"{segment}: {refresh.size:,} members (+{refresh.added:,} / "
                f"-{refresh.removed:,}) in {refresh.duration_ms} ms.",
            )

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("preview/", wrap(self.preview_view), name="segments_segment_preview"),
            path("<uuid:pk>/refresh/", wrap(self.refresh_view), name="segments_segment_refresh"),
            path(
                "rollback/<int:refresh_id>/",
                wrap(self.rollback_view),
                name="segments_segment_rollback",
            ),
            path("<uuid:pk>/members/", wrap(self.members_view), name="segments_segment_members"),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """POST the form's rule (purpose, condition JSON, cluster): the member count, or errors."""
        if request.method != "POST":
            return JsonResponse({"error": "POST only"}, status=405)
        if not request.user.has_perm("segments.preview_segment"):
            raise PermissionDenied
        try:
            condition_text = request.POST.get("condition", "").strip()
            condition = json.loads(condition_text) if condition_text else None
        except json.JSONDecodeError as exc:
            return JsonResponse({"errors": [f"condition: not JSON ({exc.msg})"]}, status=400)
        cluster_text = request.POST.get("cluster", "").strip()
        run_text = request.POST.get("cluster_run", "").strip()
        try:
            rule = SegmentRule(
                purpose_code=request.POST.get("purpose", ""),
                condition=condition,
                cluster_run_id=run_text or None,  # type: ignore[arg-type]
                cluster=int(cluster_text) if cluster_text else None,
            )
            segment_rule_check(rule)
            count = segment_preview_count(rule)
        except ConditionError as exc:
            return JsonResponse({"errors": exc.errors}, status=400)
        except ApplicationError as exc:
            return JsonResponse({"errors": exc.fields.get("segment", [exc.message])}, status=400)
        except (ValueError, ValidationError):
            return JsonResponse({"errors": ["cluster: expected a number"]}, status=400)
        return JsonResponse({"count": count})

    @staticmethod
    def _post_only(request: HttpRequest) -> None:
        if request.method != "POST":
            raise PermissionDenied

    def refresh_view(self, request: HttpRequest, pk: Any) -> HttpResponse:
        self._post_only(request)
        if not self._can_refresh(request):
            raise PermissionDenied
        segment = get_object_or_404(Segment, pk=pk)
        refresh = segment_refresh(
            segment_id=segment.pk, actor=actor_for(request.user), trigger="admin"
        )
        self._report(request, segment, refresh)
        return HttpResponseRedirect(reverse("admin:segments_segment_change", args=[segment.pk]))

    def rollback_view(self, request: HttpRequest, refresh_id: int) -> HttpResponse:
        self._post_only(request)
        if not self._can_refresh(request):
            raise PermissionDenied
        refresh = get_object_or_404(SegmentRefresh, pk=refresh_id)
        try:
            done = segment_refresh_rollback(refresh_id=refresh.pk, actor=actor_for(request.user))
            messages.success(
                request, f"Rolled back the refresh of {done.started_at:%Y-%m-%d %H:%M}."
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        return HttpResponseRedirect(
            reverse("admin:segments_segment_change", args=[refresh.segment_id])
        )

    def members_view(self, request: HttpRequest, pk: Any) -> HttpResponse:
        """Who was in the segment at a time (default now): pseudonymous ids, first 500."""
        if not request.user.has_perm("segments.view_segmentmembership"):
            raise PermissionDenied
        segment = get_object_or_404(Segment, pk=pk)
        text = request.GET.get("at", "").strip()
        at = parse_datetime(text) if text else None
        if at is None and text and parse_date(text):
            day = parse_date(text)
            at = timezone.make_aware(timezone.datetime(day.year, day.month, day.day, 23, 59, 59))
        if at is not None and timezone.is_naive(at):
            at = timezone.make_aware(at)
        at = at or timezone.now()
        stays = segment_members_on(segment=segment, at=at).order_by("entered_at", "id")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "segment": segment,
            "at": at,
            "total": stays.count(),
            "stays": stays.only("customer_id", "entered_at", "left_at")[:500],
            "title": f"Members of {segment} at {at:%Y-%m-%d %H:%M}",
        }
        return TemplateResponse(request, "admin/segments/segment/members.html", context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        segment = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if segment is not None:
            extra["size_chart"] = size_chart_svg(segment_size_series(segment=segment))
            extra["refreshes"] = SegmentRefresh.objects.filter(segment=segment)[:10]
        extra["can_refresh"] = self._can_refresh(request)
        extra["can_preview"] = request.user.has_perm("segments.preview_segment")
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> Any:
        extra = dict(extra_context or {})
        extra["can_preview"] = request.user.has_perm("segments.preview_segment")
        return super().add_view(request, form_url, extra_context=extra)


@admin.register(SegmentRefresh)
class SegmentRefreshAdmin(admin.ModelAdmin):
    list_display = [
        "segment",
        "started_at",
        "status",
        "trigger",
        "added",
        "removed",
        "size",
        "duration_ms",
    ]
    list_filter = ["status", "trigger"]
    actions = ["rollback"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        if not request.user.has_perm("segments.refresh_segment"):
            actions.pop("rollback", None)
        return actions

    @admin.action(description="Roll back (latest refresh of its segment only)")
    def rollback(self, request: HttpRequest, queryset: Any) -> None:
        for refresh in queryset:
            try:
                segment_refresh_rollback(refresh_id=refresh.pk, actor=actor_for(request.user))
                messages.success(request, f"Rolled back {refresh}.")
            except ApplicationError as exc:
                messages.error(request, f"{refresh}: {exc.message}")


@admin.register(SegmentMembership)
class SegmentMembershipAdmin(admin.ModelAdmin):
    """Membership history: pseudonymous customer ids and dates only."""

    list_display = ["customer", "segment", "entered_at", "left_at"]
    list_filter = ["segment"]
    list_select_related = ["segment"]
    raw_id_fields = ["customer"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class WebhookSubscriptionForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(
        choices=[("enter", "enter"), ("leave", "leave")], initial=["enter", "leave"]
    )

    class Meta:
        model = WebhookSubscription
        fields = ["segment", "url", "events", "is_active"]


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    form = WebhookSubscriptionForm
    list_display = ["id", "segment", "url", "events", "is_active", "created_at"]

    def save_model(
        self, request: HttpRequest, obj: WebhookSubscription, form: Any, change: bool
    ) -> None:
        if change:
            obj.save()
            return
        created, secret = webhook_subscription_create(
            segment=obj.segment,
            url=obj.url,
            events=form.cleaned_data["events"],
            actor=actor_for(request.user),
        )
        obj.pk = created.pk
        obj._state.adding = False
        messages.warning(request, f"Signing secret (shown once, store it now): {secret}")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "subscription",
        "event",
        "count",
        "status",
        "attempts",
        "last_status_code",
        "next_retry_at",
    ]
    list_filter = ["status", "event"]
    exclude = ["customer_ids"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
