"""Partner API: segments list, cursor-paginated members (ids only), webhooks; scopes and roles."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cdp.api.services import api_token_create
from cdp.audit.models import AuditEntry
from cdp.profiles.models import IdentityKind
from cdp.profiles.roles import ANALYST, COMPLIANCE_OFFICER, CONSENT_ADMIN, PLATFORM_ADMIN
from cdp.profiles.services import IdentifierValue, customer_create
from segmentation.segments.models import WebhookSubscription
from segmentation.segments.services import segment_refresh
from tests.roles import client_for
from tests.segmentation.segments.conftest import grant, segment

pytestmark = pytest.mark.django_db

GOLD = {"field": "trait.plan", "op": "eq", "value": "gold"}


def bearer(*scopes: str) -> dict[str, str]:
    _, token = api_token_create(name="crm", scopes=list(scopes), actor="system")
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.fixture
def members():
    made = [
        customer_create(
            actor="t",
            email=f"member{n}@example.com",
            first_name=f"Secretname{n}",
            country="DE",
            attributes={"plan": "gold"},
            identifiers=[IdentifierValue(IdentityKind.USER_ID, f"user-{n}")],
        )
        for n in range(7)
    ]
    grant(made)
    seg = segment(GOLD)
    segment_refresh(segment_id=seg.pk)
    return seg, made


def test_members_are_cursor_paginated_with_ids_only(client, members):
    seg, made = members
    headers = bearer("segments:read")
    seen, pages = [], 0
    url = f"/api/v1/segments/{seg.pk}/members/?limit=3"
    while url:
        response = client.get(url, **headers)
        assert response.status_code == 200
        body = response.json()
        text = json.dumps(body)
        assert "example.com" not in text and "Secretname" not in text
        for row in body["results"]:
            assert set(row) == {"customer_id", "user_ids", "entered_at"}
        seen += body["results"]
        url = body["next"]
        pages += 1
    assert pages == 3
    assert {r["customer_id"] for r in seen} == {str(c.pk) for c in made}
    assert sorted(u for r in seen for u in r["user_ids"]) == sorted(f"user-{n}" for n in range(7))


def test_member_pages_cost_the_same_queries_whatever_their_size(client, members):
    seg, _ = members
    headers = bearer("segments:read")
    client.get("/api/v1/segments/", **headers)  # the token's first use records last_used_at
    counts = []
    for limit in (2, 7):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"/api/v1/segments/{seg.pk}/members/?limit={limit}", **headers)
            assert response.status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 4


def test_members_at_a_past_time_and_a_bad_time(client, members):
    seg, _ = members
    headers = bearer("segments:read")
    before = "2000-01-01T00:00:00Z"
    response = client.get(f"/api/v1/segments/{seg.pk}/members/?at={before}", **headers)
    assert response.json()["results"] == []
    response = client.get(f"/api/v1/segments/{seg.pk}/members/?at=yesterday", **headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "segment_members_at_invalid"


def test_segment_list_shows_sizes(client, members):
    seg, _ = members
    body = client.get("/api/v1/segments/", **bearer("segments:read")).json()
    (row,) = body["results"]
    assert (row["id"], row["size"], row["purpose"], row["kind"]) == (
        str(seg.pk),
        7,
        "marketing",
        "rule",
    )


@pytest.mark.parametrize("scopes", [[], ["consent:read"], ["segments:webhooks"]])
def test_tokens_without_the_read_scope_are_refused(client, members, scopes):
    seg, _ = members
    headers = bearer(*scopes)
    assert client.get("/api/v1/segments/", **headers).status_code == 403
    assert client.get(f"/api/v1/segments/{seg.pk}/members/", **headers).status_code == 403


def test_anonymous_callers_are_refused(client, members):
    seg, _ = members
    assert client.get("/api/v1/segments/").status_code in (401, 403)
    assert client.get(f"/api/v1/segments/{seg.pk}/members/").status_code in (401, 403)


@pytest.mark.parametrize(
    ("role", "status"),
    [(ANALYST, 200), (PLATFORM_ADMIN, 200), (CONSENT_ADMIN, 403), (COMPLIANCE_OFFICER, 403)],
)
def test_staff_sessions_need_the_view_permission(django_user_model, members, role, status):
    seg, _ = members
    client = client_for(django_user_model, role)
    assert client.get(f"/api/v1/segments/{seg.pk}/members/").status_code == status


def test_webhook_subscriptions_over_the_api(client, members):
    seg, _ = members
    headers = bearer("segments:webhooks")
    url = f"/api/v1/segments/{seg.pk}/webhooks/"
    response = client.post(
        url,
        {"url": "https://crm.example.net/hook", "events": ["leave"]},
        "application/json",
        **headers,
    )
    assert response.status_code == 201
    created = response.json()
    assert created["secret"].startswith("whsec_") and created["events"] == ["leave"]
    stored = WebhookSubscription.objects.get(pk=created["id"])
    assert created["secret"] not in json.dumps(
        {k: str(v) for k, v in stored.__dict__.items()}
    )  # derived, never stored
    listed = client.get(url, **headers).json()
    assert [w["id"] for w in listed] == [created["id"]] and "secret" not in listed[0]
    assert client.get(url, **bearer("segments:read")).status_code == 403
    bad = client.post(url, {"url": "ftp://x.example/"}, "application/json", **headers)
    assert bad.status_code == 400
    deleted = client.delete(f"{url}{created['id']}/", **headers)
    assert deleted.status_code == 204
    assert not WebhookSubscription.objects.exists()
    assert AuditEntry.objects.filter(action="segment.webhook_delete").exists()
