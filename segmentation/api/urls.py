from django.urls import path

from segmentation.api.views import ClusteringRunDetailView, ClusteringRunListView

urlpatterns = [
    path("clustering-runs/", ClusteringRunListView.as_view(), name="api-clustering-runs"),
    path(
        "clustering-runs/<uuid:run_id>/",
        ClusteringRunDetailView.as_view(),
        name="api-clustering-run",
    ),
]
