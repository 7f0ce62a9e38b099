from __future__ import annotations

from rest_framework import serializers

from segmentation.segments.models import WebhookEvent


class SegmentOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    description = serializers.CharField()
    purpose = serializers.CharField(source="purpose_id")
    kind = serializers.SerializerMethodField()
    enabled = serializers.BooleanField()
    size = serializers.IntegerField()
    last_refreshed_at = serializers.DateTimeField(allow_null=True)

    def get_kind(self, segment) -> str:  # type: ignore[no-untyped-def]
        return "cluster" if segment.cluster_run_id else "rule"


class MemberOutput(serializers.Serializer):
    """A member: pseudonymous customer id and the partner-issued user ids, nothing else."""

    customer_id = serializers.UUIDField()
    user_ids = serializers.ListField(child=serializers.CharField())
    entered_at = serializers.DateTimeField()


class WebhookInput(serializers.Serializer):
    url = serializers.URLField(max_length=500)
    events = serializers.ListField(
        child=serializers.ChoiceField(WebhookEvent.values), required=False, allow_empty=False
    )


class WebhookOutput(serializers.Serializer):
    id = serializers.UUIDField()
    segment_id = serializers.UUIDField()
    url = serializers.URLField()
    events = serializers.ListField(child=serializers.CharField())
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class WebhookCreatedOutput(WebhookOutput):
    secret = serializers.CharField(help_text="The signing secret: shown once, store it now.")
