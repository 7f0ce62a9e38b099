from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.api.models import ApiToken


class WhoAmIView(APIView):
    """Which credential the call was made with: for partners checking their setup."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses=inline_serializer(
            "WhoAmI",
            {
                "kind": serializers.ChoiceField(["token", "user"]),
                "name": serializers.CharField(),
                "scopes": serializers.ListField(child=serializers.CharField()),
                "expires_at": serializers.DateTimeField(allow_null=True),
            },
        )
    )
    def get(self, request: Request) -> Response:
        if isinstance(request.auth, ApiToken):
            return Response(
                {
                    "kind": "token",
                    "name": request.auth.name,
                    "scopes": request.auth.scopes,
                    "expires_at": request.auth.expires_at,
                }
            )
        return Response(
            {"kind": "user", "name": request.user.get_username(), "scopes": [], "expires_at": None}
        )
