from django.urls import path

from cdp.privacy.api.views import (
    ExportDownloadView,
    RegulationCreateView,
    RegulationDetailView,
    RequestDetailView,
    RequestListCreateView,
)

urlpatterns = [
    path("privacy/requests/", RequestListCreateView.as_view(), name="api-privacy-requests"),
    path(
        "privacy/requests/<uuid:request_id>/",
        RequestDetailView.as_view(),
        name="api-privacy-request",
    ),
    path(
        "privacy/exports/<str:token>/download",
        ExportDownloadView.as_view(),
        name="api-privacy-export-download",
    ),
    path("regulations/", RegulationCreateView.as_view(), name="api-regulations"),
    path(
        "regulations/<uuid:regulation_id>",
        RegulationDetailView.as_view(),
        name="api-regulation",
    ),
]
