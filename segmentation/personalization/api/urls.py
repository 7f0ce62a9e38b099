from django.urls import path

from segmentation.personalization.api.views import (
    CustomerDecisionView,
    CustomerRecommendationsView,
)

urlpatterns = [
    path(
        "customers/<uuid:customer_id>/recommendations",
        CustomerRecommendationsView.as_view(),
        name="api-customer-recommendations",
    ),
    path(
        "customers/<uuid:customer_id>/decision",
        CustomerDecisionView.as_view(),
        name="api-customer-decision",
    ),
]
