"""Data-subject requests and regulations over the REST API; export downloads by signed link.

Views are thin: validate, call the service or selector, render. Tokens need the privacy
scopes; staff sessions need the matching model permission.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Prefetch
from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.api.models import ApiToken
from cdp.api.permissions import HasScope
from cdp.audit.services import actor_for
from cdp.privacy.api.serializers import (
    RegulationInput,
    RegulationOutput,
    RequestCreateInput,
    RequestOutput,
)
from cdp.privacy.export import export_link_token, export_package_download, export_package_for_token
from cdp.privacy.models import DataSubjectRequest, ExportPackage, Regulation, RequestChannel
from cdp.privacy.regulations import regulation_create
from cdp.privacy.services import dsr_create


def _actor(request: Request) -> str:
    if isinstance(request.auth, ApiToken):
        return f"token:{request.auth.prefix}"
    return actor_for(request.user)


def _may_export(request: Request) -> bool:
    if isinstance(request.auth, ApiToken):
        return "privacy:export" in request.auth.scopes
    return request.user.has_perm("privacy.download_exportpackage")


def request_output(dsr: DataSubjectRequest, request: Request) -> dict[str, Any]:
    # .all() reads the list page's prefetch; .first() would query once per request.
    package = next(iter(dsr.packages.all()), None) if _may_export(request) else None
    url = (
        request.build_absolute_uri(
            reverse("api-privacy-export-download", args=[export_link_token(package)])
        )
        if package is not None
        else None
    )
    return RequestOutput({**dsr.__dict__, "reference": dsr.reference, "download_url": url}).data


class RequestListCreateView(APIView):
    """Create a request (a partner forwarding a subject's request) or list them, due first."""

    def get_permissions(self) -> list[Any]:
        if self.request.method == "POST":
            return [HasScope("privacy:write", perm="privacy.add_datasubjectrequest")()]
        return [HasScope("privacy:read", perm="privacy.view_datasubjectrequest")()]

    @extend_schema(
        operation_id="privacy_request_create",
        request=RequestCreateInput,
        responses={201: RequestOutput},
        tags=["privacy"],
    )
    def post(self, request: Request) -> Response:
        data = RequestCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        dsr = dsr_create(
            type=v["type"],
            subject_kind=v["subject_kind"],
            subject_value=v["subject"],
            actor=_actor(request),
            channel=RequestChannel.API,
            regime=v.get("regime"),
            received_at=v.get("received_at"),
            changes=v.get("changes"),
            lift=v["lift"],
            suppress=v["suppress"],
            verified_by_partner=v["verified"],
        )
        return Response(request_output(dsr, request), status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="privacy_request_list",
        responses={200: RequestOutput(many=True)},
        parameters=[
            OpenApiParameter("status", str, OpenApiParameter.QUERY, required=False),
            OpenApiParameter("limit", int, OpenApiParameter.QUERY, required=False),
            OpenApiParameter("offset", int, OpenApiParameter.QUERY, required=False),
        ],
        tags=["privacy"],
    )
    def get(self, request: Request) -> Response:
        qs = DataSubjectRequest.objects.order_by("due_at", "id").prefetch_related(
            Prefetch("packages", queryset=ExportPackage.objects.defer("content"))
        )
        if request.query_params.get("status"):
            qs = qs.filter(status=request.query_params["status"])
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response([request_output(r, request) for r in page])


class RequestDetailView(APIView):
    permission_classes = [HasScope("privacy:read", perm="privacy.view_datasubjectrequest")]

    @extend_schema(
        operation_id="privacy_request_retrieve", responses={200: RequestOutput}, tags=["privacy"]
    )
    def get(self, request: Request, request_id: uuid.UUID) -> Response:
        dsr = DataSubjectRequest.objects.filter(pk=request_id).first()
        if dsr is None:
            return Response(
                {"error": {"code": "not_found", "message": "no such request", "fields": {}}},
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response(request_output(dsr, request))


class ExportDownloadView(APIView):
    """The package zip behind a signed, expiring link; the caller must also be allowed to
    export, and every download is audited before a byte is sent."""

    permission_classes = [HasScope("privacy:export", perm="privacy.download_exportpackage")]

    @extend_schema(operation_id="privacy_export_download", responses={200: bytes}, tags=["privacy"])
    def get(self, request: Request, token: str) -> HttpResponse:
        package = export_package_for_token(token)
        content = export_package_download(package=package, actor=_actor(request))
        response = HttpResponse(content, content_type="application/zip")
        response["Content-Disposition"] = (
            f'attachment; filename="{package.request.reference.lower()}.zip"'
        )
        response["Cache-Control"] = "no-store"
        return response


class RegulationCreateView(APIView):
    """Segment-compatible `POST /regulations`: one type, up to 5,000 subjectIds."""

    permission_classes = [HasScope("privacy:write", perm="privacy.add_datasubjectrequest")]

    @extend_schema(
        operation_id="regulation_create",
        request=RegulationInput,
        responses={200: dict},
        tags=["privacy"],
    )
    def post(self, request: Request) -> Response:
        data = RegulationInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        regulation = regulation_create(
            regulation_type=v["regulationType"],
            subject_type=v["subjectType"],
            subject_ids=v["subjectIds"],
            actor=_actor(request),
        )
        return Response({"data": {"regulateId": str(regulation.id)}}, status=status.HTTP_200_OK)


class RegulationDetailView(APIView):
    permission_classes = [HasScope("privacy:read", perm="privacy.view_regulation")]

    @extend_schema(operation_id="regulation_status", responses={200: dict}, tags=["privacy"])
    def get(self, request: Request, regulation_id: uuid.UUID) -> Response:
        regulation = Regulation.objects.filter(pk=regulation_id).first()
        if regulation is None:
            return Response(
                {"error": {"code": "not_found", "message": "no such regulation", "fields": {}}},
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response({"data": {"regulation": RegulationOutput(regulation).data}})
