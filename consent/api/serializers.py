"""Input and output shapes of the consent API, one pair per operation."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from consent.models import Channel


class SubjectSerializer(serializers.Serializer):
    """Exactly one identifier of the customer."""

    customer_id = serializers.UUIDField(required=False)
    user_id = serializers.CharField(required=False, max_length=255)
    email = serializers.EmailField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [name for name in ("customer_id", "user_id", "email") if attrs.get(name)]
        if len(given) != 1:
            raise serializers.ValidationError("give exactly one of customer_id, user_id or email")
        return attrs


class RecordConsentInput(SubjectSerializer):
    purpose = serializers.SlugField(max_length=64)
    granted = serializers.BooleanField()
    collection_method = serializers.RegexField(
        r"^[A-Za-z0-9_.:\-]{1,64}$",
        help_text="How the decision was collected, e.g. web-form, checkbox, in-store",
    )
    notice_version = serializers.IntegerField(
        required=False, min_value=1, help_text="Defaults to the purpose's current version"
    )
    timestamp = serializers.DateTimeField(required=False, help_text="Defaults to now")
    expires_at = serializers.DateTimeField(required=False, help_text="Only for a grant")


class ConsentEventOutput(serializers.Serializer):
    seq = serializers.IntegerField()
    receipt_id = serializers.UUIDField()
    customer_id = serializers.UUIDField()
    purpose = serializers.CharField(source="purpose_code")
    notice_version = serializers.IntegerField(source="purpose_version")
    notice_hash = serializers.CharField()
    granted = serializers.BooleanField()
    at = serializers.DateTimeField()
    recorded_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    channel = serializers.ChoiceField(Channel.choices)
    method = serializers.CharField()
    jurisdiction = serializers.CharField()
    receipt = serializers.JSONField(help_text="Kantara Consent Receipt (v1.1) shaped JSON")


class RecordConsentOutput(serializers.Serializer):
    event = ConsentEventOutput()
    gpc_opt_outs = serializers.IntegerField(
        help_text="Ledger entries written for a Sec-GPC: 1 header on this request"
    )


class PurposeStateOutput(serializers.Serializer):
    purpose = serializers.CharField()
    current_version = serializers.IntegerField()
    state = serializers.ChoiceField(["granted", "withdrawn", "none"])
    allowed = serializers.BooleanField(help_text="The consent selector's answer right now")
    default = serializers.CharField(help_text="opt_in or opt_out in this jurisdiction")
    since = serializers.DateTimeField(allow_null=True)
    channel = serializers.CharField(allow_null=True)
    method = serializers.CharField(allow_null=True)
    notice_version = serializers.IntegerField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)


class ConsentStateOutput(serializers.Serializer):
    customer_id = serializers.UUIDField()
    jurisdiction = serializers.CharField()
    status = serializers.CharField()
    purposes = PurposeStateOutput(many=True)
    gpc_opt_outs = serializers.IntegerField()
