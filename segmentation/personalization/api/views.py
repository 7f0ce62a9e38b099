"""Partner API: a customer's recommendations and personalization decision.

Consent is checked in the services: a customer without the personalization purpose gets a 403
with the code `personalization_not_allowed` and a reason, never an empty list that looks like
"no recommendations".
"""

from __future__ import annotations

import uuid

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.api.errors import ApplicationError
from cdp.api.permissions import HasScope
from segmentation.personalization.services import decision_make, recommendations_serve

_EXPERIMENT = inline_serializer(
    "ExperimentExposure", {"key": serializers.CharField(), "variant": serializers.CharField()}
)
RecommendationsOutput = inline_serializer(
    "RecommendationsOutput",
    {
        "customer_id": serializers.UUIDField(),
        "items": inline_serializer(
            "RecommendedItem",
            {
                "item": serializers.CharField(),
                "score": serializers.FloatField(),
                "source": serializers.CharField(),
            },
            many=True,
        ),
        "model_run": serializers.UUIDField(allow_null=True),
        "experiment": _EXPERIMENT,
    },
)
DecisionOutput = inline_serializer(
    "DecisionOutput",
    {
        "customer_id": serializers.UUIDField(),
        "matched_rule": inline_serializer(
            "MatchedRule",
            {
                "id": serializers.IntegerField(),
                "name": serializers.CharField(),
                "priority": serializers.IntegerField(),
            },
            allow_null=True,
        ),
        "offer_key": serializers.CharField(allow_null=True),
        "why": serializers.ListField(child=serializers.CharField()),
        "experiment": _EXPERIMENT,
    },
)


class CustomerRecommendationsView(APIView):
    permission_classes = [
        HasScope("personalization:read", perm="personalization.view_recommendation")
    ]

    @extend_schema(
        operation_id="customers_recommendations",
        parameters=[OpenApiParameter("k", int, description="How many items (1-10, default 10)")],
        responses=RecommendationsOutput,
        tags=["personalization"],
    )
    def get(self, request: Request, customer_id: uuid.UUID) -> Response:
        try:
            k = int(request.query_params.get("k", 10))
        except ValueError:
            raise ApplicationError(
                "recommendations_k_invalid", "k must be a whole number", fields={"k": ["invalid"]}
            ) from None
        return Response(recommendations_serve(customer_id=customer_id, k=k))


class CustomerDecisionView(APIView):
    permission_classes = [
        HasScope("personalization:read", perm="personalization.view_customerscore")
    ]

    @extend_schema(
        operation_id="customers_decision", responses=DecisionOutput, tags=["personalization"]
    )
    def get(self, request: Request, customer_id: uuid.UUID) -> Response:
        return Response(decision_make(customer_id=customer_id))
