"""Partner API for segments: list segments, page through members, manage webhooks.

Members are returned as pseudonymous customer ids and user ids only; nothing decrypted beyond the
user ids the partner itself issued.
"""

from __future__ import annotations

import uuid

from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.api.errors import ApplicationError
from cdp.api.models import ApiToken
from cdp.api.permissions import HasScope
from cdp.audit.services import actor_for
from segmentation.segments.api.serializers import (
    MemberOutput,
    SegmentOutput,
    WebhookCreatedOutput,
    WebhookInput,
    WebhookOutput,
)
from segmentation.segments.models import Segment, WebhookSubscription
from segmentation.segments.selectors import (
    segment_members_current,
    segment_members_on,
    segment_user_ids,
)
from segmentation.segments.services import (
    webhook_subscription_create,
    webhook_subscription_delete,
)


def _actor(request: Request) -> str:
    if isinstance(request.auth, ApiToken):
        return f"token:{request.auth.prefix}"
    return actor_for(request.user)


class SegmentCursor(CursorPagination):
    ordering = ("name", "id")
    page_size = 100
    max_page_size = 1000
    page_size_query_param = "limit"


class MemberCursor(CursorPagination):
    ordering = ("id",)
    page_size = 500
    max_page_size = 5000
    page_size_query_param = "limit"


class SegmentListView(APIView):
    """The segments, with their size after the last refresh."""

    permission_classes = [HasScope("segments:read", perm="segments.view_segment")]

    @extend_schema(
        operation_id="segments_list", responses=SegmentOutput(many=True), tags=["segments"]
    )
    def get(self, request: Request) -> Response:
        paginator = SegmentCursor()
        page = paginator.paginate_queryset(Segment.objects.all(), request, view=self)
        return paginator.get_paginated_response(SegmentOutput(page, many=True).data)


AT = OpenApiParameter(
    "at", str, description="ISO 8601 time: the members at that time (membership history)"
)


class SegmentMembersView(APIView):
    """A segment's members (now, or at a past time), cursor-paginated, ids only."""

    permission_classes = [HasScope("segments:read", perm="segments.view_segmentmembership")]

    @extend_schema(
        operation_id="segments_members",
        responses=MemberOutput(many=True),
        parameters=[AT],
        tags=["segments"],
    )
    def get(self, request: Request, segment_id: uuid.UUID) -> Response:
        segment = get_object_or_404(Segment, pk=segment_id)
        at_text = request.query_params.get("at")
        if at_text:
            at = parse_datetime(at_text)
            if at is None or at.tzinfo is None:
                raise ApplicationError(
                    "segment_members_at_invalid",
                    "'at' must be an ISO 8601 time with a zone",
                    fields={"at": ["invalid"]},
                )
            stays = segment_members_on(segment=segment, at=at)
        else:
            stays = segment_members_current(segment=segment)
        paginator = MemberCursor()
        page = paginator.paginate_queryset(
            stays.only("id", "customer_id", "entered_at"), request, view=self
        )
        user_ids = segment_user_ids(customer_ids=[m.customer_id for m in page])
        rows = [
            {
                "customer_id": m.customer_id,
                "user_ids": user_ids.get(m.customer_id, []),
                "entered_at": m.entered_at,
            }
            for m in page
        ]
        return paginator.get_paginated_response(MemberOutput(rows, many=True).data)


class SegmentWebhooksView(APIView):
    """List or add webhook subscriptions to a segment's enter/leave changes."""

    permission_classes = [HasScope("segments:webhooks", perm="segments.add_webhooksubscription")]

    @extend_schema(
        operation_id="segments_webhooks_list",
        responses=WebhookOutput(many=True),
        tags=["segments"],
    )
    def get(self, request: Request, segment_id: uuid.UUID) -> Response:
        segment = get_object_or_404(Segment, pk=segment_id)
        subscriptions = WebhookSubscription.objects.filter(segment=segment)
        return Response(WebhookOutput(subscriptions, many=True).data)

    @extend_schema(
        operation_id="segments_webhooks_create",
        request=WebhookInput,
        responses={201: WebhookCreatedOutput},
        tags=["segments"],
    )
    def post(self, request: Request, segment_id: uuid.UUID) -> Response:
        segment = get_object_or_404(Segment, pk=segment_id)
        data = WebhookInput(data=request.data)
        data.is_valid(raise_exception=True)
        subscription, secret = webhook_subscription_create(
            segment=segment,
            url=data.validated_data["url"],
            events=data.validated_data.get("events", []),
            actor=_actor(request),
        )
        body = WebhookCreatedOutput({**subscription.__dict__, "secret": secret}).data
        return Response(body, status=status.HTTP_201_CREATED)


class SegmentWebhookDetailView(APIView):
    permission_classes = [HasScope("segments:webhooks", perm="segments.delete_webhooksubscription")]

    @extend_schema(
        operation_id="segments_webhooks_delete", responses={204: None}, tags=["segments"]
    )
    def delete(self, request: Request, segment_id: uuid.UUID, webhook_id: uuid.UUID) -> Response:
        subscription = get_object_or_404(WebhookSubscription, pk=webhook_id, segment_id=segment_id)
        webhook_subscription_delete(subscription=subscription, actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
