"""Segments in the admin: role matrix, validation errors on the form, preview count, refresh
now, rollback, members on a date and the size chart."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from cdp.audit.models import AuditEntry
from cdp.profiles.roles import ANALYST, COMPLIANCE_OFFICER, CONSENT_ADMIN, PLATFORM_ADMIN
from segmentation.segments.models import RefreshStatus, Segment, SegmentMembership
from segmentation.segments.services import segment_refresh
from tests.roles import client_for
from tests.segmentation.segments.conftest import customer, grant, segment

pytestmark = pytest.mark.django_db

GOLD = {"field": "trait.plan", "op": "eq", "value": "gold"}


@pytest.fixture
def gold_segment():
    members = [customer(attributes={"plan": "gold"}) for _ in range(3)]
    grant(members)
    seg = segment(GOLD, name="Gold plan")
    segment_refresh(segment_id=seg.pk)
    return seg


@pytest.mark.parametrize(
    ("role", "status"),
    [
        (ANALYST, 200),
        (PLATFORM_ADMIN, 200),
        (CONSENT_ADMIN, 403),
        (COMPLIANCE_OFFICER, 403),
        (None, 302),
    ],
)
def test_segment_pages_per_role(django_user_model, gold_segment, role, status):
    client = client_for(django_user_model, role)
    pages = [
        reverse("admin:segments_segment_changelist"),
        reverse("admin:segments_segment_change", args=[gold_segment.pk]),
        reverse("admin:segments_segment_members", args=[gold_segment.pk]),
    ]
    for page in pages:
        assert client.get(page).status_code == status, page


def test_change_page_shows_the_size_chart_and_no_personal_data(django_user_model, gold_segment):
    client = client_for(django_user_model, ANALYST)
    page = client.get(reverse("admin:segments_segment_change", args=[gold_segment.pk]))
    html = page.content.decode()
    assert 'class="segment-size-chart"' in html and "<polyline" in html
    assert "example.com" not in html
    assert "Preview count" in html and "Refresh now" in html


def form_data(**overrides):
    data = {
        "name": "Big spenders",
        "description": "",
        "purpose": "marketing",
        "condition": json.dumps({"field": "feature.monetary", "op": "gt", "value": 100}),
        "cluster_run": "",
        "cluster": "",
        "enabled": "on",
        "realtime": "on",
        "refresh_interval_minutes": "60",
    }
    data.update(overrides)
    return data


def test_invalid_condition_shows_the_path_and_saves_nothing(django_user_model):
    client = client_for(django_user_model, ANALYST)
    bad = json.dumps({"all": [{"field": "country", "op": "eq", "value": "DE"}, {"field": "foo"}]})
    response = client.post(reverse("admin:segments_segment_add"), form_data(condition=bad))
    assert response.status_code == 200
    assert "all[1].field: unknown field &#x27;foo&#x27;" in response.content.decode()
    assert not Segment.objects.exists()


def test_valid_segment_is_saved_and_audited(django_user_model):
    client = client_for(django_user_model, ANALYST)
    response = client.post(reverse("admin:segments_segment_add"), form_data())
    assert response.status_code == 302
    seg = Segment.objects.get(name="Big spenders")
    assert seg.next_refresh_at is not None
    assert AuditEntry.objects.filter(action="segment.create", object_id=str(seg.pk)).exists()


def test_preview_counts_before_saving(django_user_model, gold_segment):
    client = client_for(django_user_model, ANALYST)
    url = reverse("admin:segments_segment_preview")
    ok = client.post(url, {"purpose": "marketing", "condition": json.dumps(GOLD)})
    assert ok.json() == {"count": 3}
    bad = client.post(url, {"purpose": "marketing", "condition": '{"field": "x"}'})
    assert bad.status_code == 400 and bad.json()["errors"][0] == "field: unknown field 'x'"
    nojson = client.post(url, {"purpose": "marketing", "condition": "{"})
    assert nojson.status_code == 400
    refused = client_for(django_user_model, CONSENT_ADMIN).post(url, {"purpose": "marketing"})
    assert refused.status_code == 403


def test_refresh_now_and_rollback_from_the_admin(django_user_model, gold_segment):
    client = client_for(django_user_model, ANALYST)
    late = customer(attributes={"plan": "gold"})
    grant([late])
    response = client.post(reverse("admin:segments_segment_refresh", args=[gold_segment.pk]))
    assert response.status_code == 302
    refresh = gold_segment.refreshes.order_by("-id").first()
    assert (refresh.added, refresh.trigger, refresh.requested_by) == (
        1,
        "admin",
        f"user:{refresh_user(django_user_model)}",
    )
    assert SegmentMembership.objects.filter(segment=gold_segment, customer=late).exists()

    client.post(reverse("admin:segments_segment_rollback", args=[refresh.pk]))

    refresh.refresh_from_db()
    assert refresh.status == RefreshStatus.ROLLED_BACK
    assert not SegmentMembership.objects.filter(segment=gold_segment, customer=late).exists()
    assert AuditEntry.objects.filter(action="segment.refresh_rollback").exists()


def test_refresh_and_rollback_need_the_permission(django_user_model, gold_segment):
    client = client_for(django_user_model, CONSENT_ADMIN)
    before = gold_segment.refreshes.count()
    assert (
        client.post(reverse("admin:segments_segment_refresh", args=[gold_segment.pk])).status_code
        == 403
    )
    refresh = gold_segment.refreshes.first()
    assert (
        client.post(reverse("admin:segments_segment_rollback", args=[refresh.pk])).status_code
        == 403
    )
    assert gold_segment.refreshes.count() == before
    refresh.refresh_from_db()
    assert refresh.status == RefreshStatus.SUCCEEDED


def test_members_on_a_date_page(django_user_model, gold_segment):
    client = client_for(django_user_model, ANALYST)
    url = reverse("admin:segments_segment_members", args=[gold_segment.pk])
    assert "3 members" in client.get(url).content.decode()
    assert "0 members" in client.get(url, {"at": "2001-01-01"}).content.decode()


def refresh_user(django_user_model) -> int:
    return django_user_model.objects.get(username="analyst").pk
