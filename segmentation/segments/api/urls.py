from django.urls import path

from segmentation.segments.api.views import (
    SegmentListView,
    SegmentMembersView,
    SegmentWebhookDetailView,
    SegmentWebhooksView,
)

urlpatterns = [
    path("segments/", SegmentListView.as_view(), name="api-segments"),
    path(
        "segments/<uuid:segment_id>/members/",
        SegmentMembersView.as_view(),
        name="api-segment-members",
    ),
    path(
        "segments/<uuid:segment_id>/webhooks/",
        SegmentWebhooksView.as_view(),
        name="api-segment-webhooks",
    ),
    path(
        "segments/<uuid:segment_id>/webhooks/<uuid:webhook_id>/",
        SegmentWebhookDetailView.as_view(),
        name="api-segment-webhook",
    ),
]
