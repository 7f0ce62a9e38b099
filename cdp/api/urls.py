"""REST API routes under /api/v1/; each package adds its own endpoints here."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
