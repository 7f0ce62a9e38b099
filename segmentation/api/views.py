"""Clustering runs over the REST API: start one, read its status and personas.

Views are thin: validate the input, call the service, render. Tokens need the
`segmentation:write` / `segmentation:read` scopes; staff sessions the matching permissions.
"""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.api.errors import ApplicationError
from cdp.api.models import ApiToken
from cdp.api.permissions import HasScope
from cdp.audit.services import actor_for
from segmentation.api.serializers import ClusteringRunInput, ClusteringRunOutput
from segmentation.models import ClusteringRun
from segmentation.selectors import run_personas
from segmentation.services import clustering_run_create


def _actor(request: Request) -> str:
    if isinstance(request.auth, ApiToken):
        return f"token:{request.auth.prefix}"
    return actor_for(request.user)


def run_output(run: ClusteringRun, *, with_personas: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        field: getattr(run, field)
        for field in ClusteringRunOutput().fields
        if field not in ("personas",)
    }
    if with_personas:
        data["personas"] = [
            {
                "cluster": p.cluster,
                "label": p.label,
                "name": p.display_name,
                "description": p.description,
                "size": p.size,
                "share": p.share,
                "medians": p.medians,
                "difference": p.difference,
            }
            for p in run_personas(run=run)
        ]
    return dict(ClusteringRunOutput(data).data)


class ClusteringRunListView(APIView):
    """Start a clustering run (queued for a worker), or list runs, newest first."""

    def get_permissions(self) -> list[Any]:
        if self.request.method == "POST":
            return [HasScope("segmentation:write", perm="segmentation.start_clusteringrun")()]
        return [HasScope("segmentation:read", perm="segmentation.view_clusteringrun")()]

    @extend_schema(
        operation_id="clustering_run_start",
        request=ClusteringRunInput,
        responses={202: ClusteringRunOutput},
        tags=["segmentation"],
    )
    def post(self, request: Request) -> Response:
        data = ClusteringRunInput(data=request.data)
        data.is_valid(raise_exception=True)
        run = clustering_run_create(actor=_actor(request), trigger="api", **data.validated_data)
        return Response(run_output(run, with_personas=False), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="clustering_run_list",
        responses={200: ClusteringRunOutput(many=True)},
        parameters=[
            OpenApiParameter("limit", int, OpenApiParameter.QUERY, required=False),
            OpenApiParameter("offset", int, OpenApiParameter.QUERY, required=False),
        ],
        tags=["segmentation"],
    )
    def get(self, request: Request) -> Response:
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(
            ClusteringRun.objects.defer("model", "projection").order_by("-created_at"),
            request,
            view=self,
        )
        return paginator.get_paginated_response(
            [run_output(run, with_personas=False) for run in page or []]
        )


class ClusteringRunDetailView(APIView):
    """A run's status and progress; once it succeeded, its metrics and personas."""

    permission_classes = [HasScope("segmentation:read", perm="segmentation.view_clusteringrun")]

    @extend_schema(
        operation_id="clustering_run_get",
        responses={200: ClusteringRunOutput},
        tags=["segmentation"],
    )
    def get(self, request: Request, run_id: uuid.UUID) -> Response:
        run = ClusteringRun.objects.defer("model", "projection").filter(pk=run_id).first()
        if run is None:
            raise ApplicationError("clustering_run_unknown", "no such clustering run", status=404)
        return Response(run_output(run, with_personas=True))
