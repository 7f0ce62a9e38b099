from django.urls import path

from consent.api.views import (
    ConsentHistoryView,
    ConsentLookupView,
    ConsentStateView,
    RecordConsentView,
)

urlpatterns = [
    path("consents", RecordConsentView.as_view(), name="api-consent-record"),
    path("consents/lookup", ConsentLookupView.as_view(), name="api-consent-lookup"),
    path(
        "customers/<uuid:customer_id>/consents",
        ConsentStateView.as_view(),
        name="api-consent-state",
    ),
    path(
        "customers/<uuid:customer_id>/consents/history",
        ConsentHistoryView.as_view(),
        name="api-consent-history",
    ),
]
