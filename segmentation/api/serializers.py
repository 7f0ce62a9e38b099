"""Input and output shapes of the clustering API (aggregates only: no per-customer rows)."""

from __future__ import annotations

from rest_framework import serializers

from segmentation.ml.names import ALGORITHMS
from segmentation.selectors import NUMERIC_FEATURES


class ClusteringRunInput(serializers.Serializer):
    algorithm = serializers.ChoiceField(choices=list(ALGORITHMS), default="kmeans")
    params = serializers.DictField(required=False, default=dict)
    features = serializers.ListField(
        child=serializers.ChoiceField(choices=list(NUMERIC_FEATURES)),
        required=False,
        default=list,
        help_text="Feature names; empty means the default set.",
    )
    random_state = serializers.IntegerField(required=False, default=0, min_value=0)
    name = serializers.CharField(required=False, default="", allow_blank=True, max_length=100)


class PersonaOutput(serializers.Serializer):
    cluster = serializers.IntegerField()
    label = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    size = serializers.IntegerField()
    share = serializers.FloatField()
    medians = serializers.DictField()
    difference = serializers.DictField()


class ClusteringRunOutput(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    progress = serializers.IntegerField()
    stage = serializers.CharField()
    algorithm = serializers.CharField()
    params = serializers.DictField()
    features = serializers.ListField(child=serializers.CharField())
    population = serializers.IntegerField()
    k = serializers.IntegerField(allow_null=True)
    metrics = serializers.DictField()
    stability_ari = serializers.FloatField(allow_null=True)
    sklearn_version = serializers.CharField()
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    personas = PersonaOutput(many=True, required=False)
