"""REST API routes under /api/v1/; each package adds its own endpoints here."""

from django.urls import include, path

from cdp.api.views import WhoAmIView

urlpatterns = [
    path("whoami", WhoAmIView.as_view(), name="api-whoami"),
    path("", include("consent.api.urls")),
    path("", include("segmentation.api.urls")),
    path("", include("segmentation.segments.api.urls")),
    path("", include("segmentation.personalization.api.urls")),
    path("", include("cdp.privacy.api.urls")),
    path("", include("cdp.ingest.imports.api.urls")),
]
