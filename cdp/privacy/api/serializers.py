"""Input and output shapes of the privacy API, one pair per operation."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from cdp.privacy.models import Regime, Regulation, RequestType, SubjectKind
from cdp.privacy.regulations import MAX_SUBJECTS, SUBJECT_TYPES


class RequestCreateInput(serializers.Serializer):
    type = serializers.ChoiceField(choices=RequestType.choices)
    subject_kind = serializers.ChoiceField(choices=SubjectKind.choices)
    subject = serializers.CharField(max_length=320, help_text="The identifier; kept only hashed")
    regime = serializers.ChoiceField(
        choices=Regime.choices, required=False, help_text="Default: from the jurisdiction"
    )
    received_at = serializers.DateTimeField(required=False)
    changes = serializers.DictField(required=False, help_text="Rectification: {field: value}")
    lift = serializers.BooleanField(required=False, default=False)
    suppress = serializers.BooleanField(required=False, default=True)
    verified = serializers.BooleanField(
        required=False, default=False, help_text="The partner attests that it verified the subject"
    )


class RequestOutput(serializers.Serializer):
    id = serializers.UUIDField()
    reference = serializers.CharField()
    type = serializers.CharField()
    regime = serializers.CharField()
    channel = serializers.CharField()
    status = serializers.CharField()
    subject_kind = serializers.CharField()
    subject_found = serializers.BooleanField(allow_null=True)
    received_at = serializers.DateTimeField()
    ack_due_at = serializers.DateTimeField(allow_null=True)
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    due_at = serializers.DateTimeField()
    extended_at = serializers.DateTimeField(allow_null=True)
    verified_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    report = serializers.JSONField()
    download_url = serializers.CharField(allow_null=True)


class RegulationInput(serializers.Serializer):
    regulationType = serializers.ChoiceField(choices=Regulation.Type.choices)
    subjectType = serializers.ChoiceField(choices=sorted(SUBJECT_TYPES))
    subjectIds = serializers.ListField(
        child=serializers.CharField(max_length=320), min_length=1, max_length=MAX_SUBJECTS
    )


class RegulationOutput(serializers.Serializer):
    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {
            "id": str(instance.id),
            "regulationType": instance.regulation_type,
            "subjectType": instance.subject_type,
            "subjectCount": instance.subject_count,
            "overallStatus": instance.status,
            "createdAt": instance.created_at.isoformat(),
            "finishedAt": instance.finished_at.isoformat() if instance.finished_at else None,
            "counts": {k: v for k, v in instance.counts.items() if k != "pending_indexes"},
        }
