"""Public, unauthenticated consent endpoints."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from consent.conf import gpc_last_update


@require_GET
def gpc_json(request: HttpRequest) -> JsonResponse:
    """/.well-known/gpc.json: this site honours Global Privacy Control signals."""
    response = JsonResponse({"gpc": True, "lastUpdate": gpc_last_update()})
    response["Cache-Control"] = "public, max-age=86400"
    return response
