"""Routes of the Segment Tracking API, mounted at /v1/."""

from django.urls import path

from cdp.ingest.views import tracking_view

urlpatterns = [
    path("batch", tracking_view(None), name="tracking-batch"),
    path("import", tracking_view(None, name="import"), name="tracking-import"),
    *[
        path(kind, tracking_view(kind), name=f"tracking-{kind}")
        for kind in ("identify", "track", "page", "screen", "group", "alias")
    ],
]
