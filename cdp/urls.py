from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from cdp import health
from consent.views import gpc_json

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path(".well-known/gpc.json", gpc_json, name="gpc-json"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("cdp.api.urls")),
    # The Segment Tracking API (cdp.ingest): /v1/batch, /v1/track, ...
    path("v1/", include("cdp.ingest.urls")),
]
