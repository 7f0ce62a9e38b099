"""Bearer tokens are looked up on every request by one fixed statement: revocation, expiry and
scope changes apply to the very next request, and a stale last-used stamp is refreshed."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from cdp.api.authentication import LAST_USED_GRANULARITY, token_lookup
from cdp.api.models import ApiToken, token_hash
from cdp.api.services import api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_lookup_returns_the_stored_token_with_every_field():
    api_token, token = api_token_create(name="crm", scopes=["consent:read"], actor="system")
    stored = ApiToken.objects.get(pk=api_token.pk)

    found = token_lookup(token_hash(token))

    assert found is not None and found.pk == stored.pk
    for field in ApiToken._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(stored, field.attname), field.name
    assert found._state.adding is False
    assert token_lookup(token_hash(token + "x")) is None


def test_revocation_applies_to_the_next_request():
    api = APIClient()
    api_token, token = api_token_create(name="crm", scopes=["consent:read"], actor="system")
    assert api.get("/api/v1/whoami", **bearer(token)).status_code == 200

    api_token_revoke(api_token=api_token, actor="system")
    response = api.get("/api/v1/whoami", **bearer(token))

    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_expiry_and_scope_changes_apply_to_the_next_request():
    api = APIClient()
    api_token, token = api_token_create(name="crm", scopes=["segments:read"], actor="system")
    url = f"/api/v1/customers/{api_token.pk}/recommendations"  # any uuid: scope is checked first
    assert api.get(url, **bearer(token)).status_code == 403

    ApiToken.objects.filter(pk=api_token.pk).update(scopes=["personalization:read"])
    assert api.get(url, **bearer(token)).status_code == 404  # allowed now; no such customer

    ApiToken.objects.filter(pk=api_token.pk).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    assert api.get(url, **bearer(token)).status_code == 401


def test_last_used_is_stamped_at_most_once_per_granularity():
    api = APIClient()
    api_token, token = api_token_create(name="crm", scopes=["consent:read"], actor="system")
    assert ApiToken.objects.get(pk=api_token.pk).last_used_at is None

    api.get("/api/v1/whoami", **bearer(token))
    first = ApiToken.objects.get(pk=api_token.pk).last_used_at
    api.get("/api/v1/whoami", **bearer(token))
    assert first is not None
    assert ApiToken.objects.get(pk=api_token.pk).last_used_at == first

    stale = timezone.now() - LAST_USED_GRANULARITY - datetime.timedelta(seconds=1)
    ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=stale)
    api.get("/api/v1/whoami", **bearer(token))
    assert ApiToken.objects.get(pk=api_token.pk).last_used_at > stale
