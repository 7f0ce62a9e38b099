"""Consent over the REST API: record a decision, read the current state and the history.

Views are thin: they resolve the customer, call the service or selector, and render. A request
carrying `Sec-GPC: 1` also records the GPC opt-out for the customer it names (after the
operation, so the signal wins over a grant of sale/sharing in the same request).
"""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.api.models import ApiToken
from cdp.api.permissions import HasScope
from cdp.audit.services import actor_for
from cdp.profiles.models import Customer
from consent.api.serializers import (
    ConsentEventOutput,
    ConsentStateOutput,
    RecordConsentInput,
    RecordConsentOutput,
    SubjectSerializer,
)
from consent.models import Channel, ConsentEvent, Purpose
from consent.receipts import consent_receipt
from consent.selectors import consent_customer_resolve, consent_history, consent_overview
from consent.services import consent_apply_gpc, consent_record

GPC_HEADER = OpenApiParameter(
    "Sec-GPC",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Global Privacy Control: `1` records an opt-out of sale/sharing for the customer",
    enum=["1"],
)


def _actor(request: Request) -> str:
    if isinstance(request.auth, ApiToken):
        return f"token:{request.auth.prefix}"
    return actor_for(request.user)


def _client(request: Request) -> dict[str, str | None]:
    return {
        "ip": request.META.get("REMOTE_ADDR"),
        "user_agent": request.META.get("HTTP_USER_AGENT"),
    }


def _apply_gpc(request: Request, customer: Customer) -> int:
    if request.headers.get("Sec-GPC", "").strip() != "1":
        return 0
    if customer.status not in ("active", "restricted"):
        return 0
    return len(
        consent_apply_gpc(customer=customer, actor=_actor(request), via="api", **_client(request))
    )


def event_output(event: ConsentEvent, purposes: dict[str, Purpose]) -> dict[str, Any]:
    data = ConsentEventOutput(
        {**event.__dict__, "receipt": consent_receipt(event, purposes.get(event.purpose_code))}
    ).data
    return dict(data)


def state_output(customer: Customer, gpc_opt_outs: int) -> dict[str, Any]:
    rows = []
    for row in consent_overview(customer=customer):
        state = row.state
        rows.append(
            {
                "purpose": row.purpose.code,
                "current_version": row.purpose.version,
                "state": "none" if state is None else "granted" if state.granted else "withdrawn",
                "allowed": row.allowed,
                "default": row.default,
                "since": state.since if state else None,
                "channel": state.channel if state else None,
                "method": state.method if state else None,
                "notice_version": state.purpose_version if state else None,
                "expires_at": state.expires_at if state else None,
            }
        )
    return ConsentStateOutput(
        {
            "customer_id": customer.id,
            "jurisdiction": customer.jurisdiction,
            "status": customer.status,
            "purposes": rows,
            "gpc_opt_outs": gpc_opt_outs,
        }
    ).data


class RecordConsentView(APIView):
    """Record a consent decision for a customer named by customer id, user id or e-mail."""

    permission_classes = [HasScope("consent:write", perm="consent.record_consent")]

    @extend_schema(
        operation_id="consent_record",
        request=RecordConsentInput,
        responses={201: RecordConsentOutput},
        parameters=[GPC_HEADER],
        tags=["consent"],
    )
    def post(self, request: Request) -> Response:
        data = RecordConsentInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        customer = consent_customer_resolve(
            customer_id=values.get("customer_id"),
            user_id=values.get("user_id"),
            email=values.get("email"),
        )
        event = consent_record(
            customer=customer,
            purpose_code=values["purpose"],
            granted=values["granted"],
            channel=Channel.API,
            method=values["collection_method"],
            actor=_actor(request),
            notice_version=values.get("notice_version"),
            at=values.get("timestamp"),
            expires_at=values.get("expires_at"),
            **_client(request),
        )
        gpc = _apply_gpc(request, customer)
        purposes = {p.code: p for p in Purpose.objects.filter(code=event.purpose_code)}
        return Response(
            {"event": event_output(event, purposes), "gpc_opt_outs": gpc},
            status=status.HTTP_201_CREATED,
        )


class ConsentStateView(APIView):
    """A customer's current consent per purpose, with the selector's answer for each."""

    permission_classes = [HasScope("consent:read", perm="consent.view_consentstate")]

    @extend_schema(
        operation_id="consent_state",
        responses={200: ConsentStateOutput},
        parameters=[GPC_HEADER],
        tags=["consent"],
    )
    def get(self, request: Request, customer_id: uuid.UUID) -> Response:
        customer = consent_customer_resolve(customer_id=customer_id)
        gpc = _apply_gpc(request, customer)
        return Response(state_output(customer, gpc))


class ConsentLookupView(APIView):
    """The same as the state, for a customer named by user id or e-mail (kept out of URLs)."""

    permission_classes = [HasScope("consent:read", perm="consent.view_consentstate")]

    @extend_schema(
        operation_id="consent_lookup",
        request=SubjectSerializer,
        responses={200: ConsentStateOutput},
        parameters=[GPC_HEADER],
        tags=["consent"],
    )
    def post(self, request: Request) -> Response:
        data = SubjectSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        customer = consent_customer_resolve(**data.validated_data)
        gpc = _apply_gpc(request, customer)
        return Response(state_output(customer, gpc))


class ConsentHistoryView(APIView):
    """A customer's ledger entries, newest first, each with its receipt. Paginated."""

    permission_classes = [HasScope("consent:read", perm="consent.view_consentevent")]

    @extend_schema(
        operation_id="consent_history",
        responses={200: ConsentEventOutput(many=True)},
        parameters=[
            GPC_HEADER,
            OpenApiParameter("limit", int, OpenApiParameter.QUERY, required=False),
            OpenApiParameter("offset", int, OpenApiParameter.QUERY, required=False),
        ],
        tags=["consent"],
    )
    def get(self, request: Request, customer_id: uuid.UUID) -> Response:
        customer = consent_customer_resolve(customer_id=customer_id)
        _apply_gpc(request, customer)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(consent_history(customer_id=customer.id), request, self)
        codes = {event.purpose_code for event in page or []}
        purposes = {p.code: p for p in Purpose.objects.filter(code__in=codes)}
        return paginator.get_paginated_response(
            [event_output(event, purposes) for event in page or []]
        )
