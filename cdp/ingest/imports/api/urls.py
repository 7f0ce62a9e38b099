from django.urls import path

from cdp.ingest.imports.api.views import (
    ImportCreateView,
    ImportDetailView,
    ImportErrorsCsvView,
    ImportErrorsView,
)

urlpatterns = [
    path("imports/", ImportCreateView.as_view(), name="api-imports"),
    path("imports/<uuid:job_id>/", ImportDetailView.as_view(), name="api-import"),
    path("imports/<uuid:job_id>/errors", ImportErrorsView.as_view(), name="api-import-errors"),
    path(
        "imports/<uuid:job_id>/errors.csv",
        ImportErrorsCsvView.as_view(),
        name="api-import-errors-csv",
    ),
]
