"""CSV imports over the REST API: upload (multipart) -> job id; status, counts, error report.

Tokens need `imports:write` to upload and `imports:read` to read; staff sessions need the
matching model permissions. Nothing here returns a value from the file.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.api.errors import ApplicationError
from cdp.api.models import ApiToken
from cdp.api.permissions import HasScope
from cdp.audit.services import actor_for
from cdp.ingest.imports.selectors import (
    import_job_error_csv,
    import_job_errors,
    import_job_progress,
    import_job_quality,
)
from cdp.ingest.imports.services import import_job_create, import_source_get_or_create
from cdp.ingest.models import ImportJob, ImportKind, ImportStatus


def _actor(request: Request) -> str:
    if isinstance(request.auth, ApiToken):
        return f"token:{request.auth.prefix}"
    return actor_for(request.user)


class ImportCreateInput(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)
    source = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=ImportKind.choices)
    mapping = serializers.CharField(
        required=False, help_text="JSON object {header: target}; default: the saved or guessed one"
    )
    default_region = serializers.CharField(required=False, max_length=2)
    day_first = serializers.BooleanField(required=False, default=False)
    currency = serializers.CharField(required=False, max_length=3)
    rules = serializers.CharField(
        required=False, help_text="Comma-separated: customer_id,email,phone[,content]"
    )


ImportJobOutput = inline_serializer(
    "ImportJob",
    {
        "id": serializers.UUIDField(),
        "status": serializers.CharField(),
        "kind": serializers.CharField(),
        "fraction": serializers.FloatField(),
        "rows_done": serializers.IntegerField(),
        "rows_per_second": serializers.FloatField(),
        "seconds_left": serializers.FloatField(allow_null=True),
        "counts": serializers.DictField(),
        "error": serializers.DictField(allow_null=True),
        "mapping": serializers.DictField(),
        "quality": serializers.DictField(),
    },
)


def job_output(job: ImportJob) -> dict[str, Any]:
    return {**import_job_progress(job), "mapping": job.mapping, "quality": import_job_quality(job)}


class ImportCreateView(APIView):
    """Upload a CSV of profiles or transactions; returns the job id at once (202)."""

    permission_classes = [HasScope("imports:write", perm="ingest.add_importjob")]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="import_create",
        request={"multipart/form-data": ImportCreateInput},
        responses={202: ImportJobOutput},
        tags=["imports"],
    )
    def post(self, request: Request) -> Response:
        data = ImportCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        mapping = None
        if values.get("mapping"):
            try:
                mapping = json.loads(values["mapping"])
            except ValueError:
                raise ApplicationError(
                    "import_mapping_invalid", "mapping is not JSON", fields={"mapping": "JSON"}
                ) from None
        options = {
            k: values[k]
            for k in ("default_region", "day_first", "currency", "rules")
            if k in values
        }
        actor = _actor(request)
        source = import_source_get_or_create(name=values["source"], actor=actor)
        upload = values["file"]
        job = import_job_create(
            source=source,
            kind=values["kind"],
            file=upload,
            file_name=upload.name or "upload.csv",
            actor=actor,
            mapping=mapping,
            options=options,
            start=True,
        )
        if job.status == ImportStatus.FAILED:
            raise ApplicationError(job.error_code, job.error_message, fields={"job": str(job.id)})
        return Response(job_output(job), status=status.HTTP_202_ACCEPTED)


class ImportDetailView(APIView):
    """A job's status, progress, counts (rows_read = created + updated + duplicates + rejected)
    and data-quality report."""

    permission_classes = [HasScope("imports:read", perm="ingest.view_importjob")]

    @extend_schema(operation_id="import_detail", responses={200: ImportJobOutput}, tags=["imports"])
    def get(self, request: Request, job_id: uuid.UUID) -> Response:
        return Response(job_output(get_object_or_404(ImportJob, pk=job_id)))


class ImportErrorsView(APIView):
    """The error report: row number (header = 1), column, code and reason; never a value.
    JSON, paginated; `errors.csv` streams the whole report as CSV."""

    permission_classes = [HasScope("imports:read", perm="ingest.view_importjob")]

    @extend_schema(
        operation_id="import_errors",
        parameters=[
            OpenApiParameter("limit", int, OpenApiParameter.QUERY, required=False),
            OpenApiParameter("offset", int, OpenApiParameter.QUERY, required=False),
        ],
        responses={200: inline_serializer("ImportRowErrors", {"results": serializers.ListField()})},
        tags=["imports"],
    )
    def get(self, request: Request, job_id: uuid.UUID) -> Any:
        job = get_object_or_404(ImportJob, pk=job_id)
        paginator = LimitOffsetPagination()
        paginator.default_limit = 100
        page = paginator.paginate_queryset(import_job_errors(job), request, view=self)
        return paginator.get_paginated_response(
            [
                {"row": e.row, "column": e.column, "code": e.code, "reason": e.reason}
                for e in page or []
            ]
        )


class ImportErrorsCsvView(APIView):
    """The whole error report as CSV (row, column, code, reason), streamed."""

    permission_classes = [HasScope("imports:read", perm="ingest.view_importjob")]

    @extend_schema(operation_id="import_errors_csv", responses={200: str}, tags=["imports"])
    def get(self, request: Request, job_id: uuid.UUID) -> StreamingHttpResponse:
        job = get_object_or_404(ImportJob, pk=job_id)
        response = StreamingHttpResponse(import_job_error_csv(job), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="import-{job.id}-errors.csv"'
        return response
