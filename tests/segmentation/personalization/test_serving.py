"""The one-statement serving path: its consent answer is `customers_allowed_for`'s, in every
consent situation, and a change (withdrawal, restriction, a purpose switched off) applies to the
very next request."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from cdp.api.services import api_token_create
from cdp.profiles.models import Customer
from consent.models import Purpose
from consent.selectors import customers_allowed_for
from consent.services import consent_record_many
from consent.services.recording import ConsentDecision
from segmentation.personalization import selectors
from segmentation.personalization.models import ModelRun, Recommendation
from tests.segmentation.personalization.conftest import customer, grant

pytestmark = pytest.mark.django_db


def allowed_by_orm(customer_id: uuid.UUID, now: dt.datetime) -> bool:
    one = Customer.objects.filter(pk=customer_id)
    return customers_allowed_for("personalization", one, now=now).exists()


def assert_same(who, now, expected: bool) -> None:
    state = selectors.recommendation_serving_state(who.pk, now=now)
    assert state is not None
    assert state.allowed is expected
    assert allowed_by_orm(who.pk, now) is expected


def test_gate_agrees_with_customers_allowed_for_in_every_situation():
    now = timezone.now()
    granted, withdrawn, silent_gdpr = customer(), customer(), customer()
    silent_ccpa, silent_other = customer(country="US"), customer(country="JP")
    restricted, expiring = customer(), customer()
    grant([granted, withdrawn, restricted], "personalization")
    grant([withdrawn], "personalization", granted=False)
    Customer.objects.filter(pk=restricted.pk).update(status="restricted")
    consent_record_many(
        decisions=[
            ConsentDecision(
                customer=expiring,
                purpose_code="personalization",
                granted=True,
                channel="admin",
                method="test",
                expires_at=now + dt.timedelta(hours=1),
            )
        ],
        actor="test",
    )

    assert_same(granted, now, True)
    assert_same(withdrawn, now, False)
    assert_same(silent_gdpr, now, False)  # opt-in under GDPR
    assert_same(silent_ccpa, now, True)  # opt-out default under CCPA
    assert_same(silent_other, now, False)  # opt-in default elsewhere
    assert_same(restricted, now, False)
    assert_same(expiring, now, True)
    assert_same(expiring, now + dt.timedelta(hours=2), False)  # the request's time is bound

    Purpose.objects.filter(code="personalization").update(is_active=False)
    assert_same(granted, now, False)
    assert_same(silent_ccpa, now, False)


def test_unknown_customer_has_no_state():
    assert selectors.recommendation_serving_state(uuid.uuid4()) is None


def test_state_carries_the_list_or_else_the_latest_fallback():
    now = timezone.now()
    listed, cold = customer(), customer()
    grant([listed, cold], "personalization")
    old = ModelRun.objects.create(
        kind="recommendations",
        purpose="personalization",
        status="succeeded",
        metrics={"fallback": [{"item": "OLD", "score": 1.0, "source": "popularity"}]},
        finished_at=now - dt.timedelta(days=1),
    )
    new = ModelRun.objects.create(
        kind="recommendations",
        purpose="personalization",
        status="succeeded",
        metrics={"fallback": [{"item": "NEW", "score": 1.0, "source": "popularity"}]},
        finished_at=now,
    )
    ModelRun.objects.create(kind="recommendations", purpose="personalization", status="failed")
    items = [{"item": "X1", "score": 0.25, "source": "item_knn"}]
    Recommendation.objects.create(customer=listed, model_run=old, items=items, computed_at=now)

    mine = selectors.recommendation_serving_state(listed.pk)
    theirs = selectors.recommendation_serving_state(cold.pk)

    assert (mine.items, mine.run_id, mine.fallback_items) == (items, old.pk, None)
    assert theirs.items is None
    assert theirs.fallback_items == [{"item": "NEW", "score": 1.0, "source": "popularity"}]
    assert theirs.fallback_run_id == new.pk
    assert mine.experiment_running is False


def test_cold_start_without_any_run_gets_an_empty_list(client):
    who = customer()
    grant([who], "personalization")
    _, token = api_token_create(name="shop", scopes=["personalization:read"], actor="system")

    response = client.get(
        f"/api/v1/customers/{who.pk}/recommendations", HTTP_AUTHORIZATION=f"Bearer {token}"
    )

    assert response.status_code == 200
    assert response.json()["items"] == [] and response.json()["model_run"] is None


@pytest.mark.parametrize("endpoint", ["recommendations", "decision"])
@pytest.mark.parametrize("change", ["withdraw", "restrict", "purpose_off"])
def test_a_change_applies_to_the_very_next_request(client, change, endpoint):
    who = customer()
    grant([who], "personalization")
    _, token = api_token_create(name="shop", scopes=["personalization:read"], actor="system")
    url = f"/api/v1/customers/{who.pk}/{endpoint}"
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert client.get(url, **headers).status_code == 200

    if change == "withdraw":
        grant([who], "personalization", granted=False)
    elif change == "restrict":
        Customer.objects.filter(pk=who.pk).update(status="restricted")
    else:
        Purpose.objects.filter(code="personalization").update(is_active=False)
    response = client.get(url, **headers)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "personalization_not_allowed"


def test_decision_state_reads_scores_segments_and_active_rules_in_order():
    from segmentation.personalization.models import CustomerScore, PersonalizationRule
    from segmentation.segments.models import SegmentMembership
    from tests.segmentation.segments.conftest import segment

    now = timezone.now()
    who = customer()
    grant([who], "personalization")
    vip = segment({"field": "country", "op": "eq", "value": "DE"}, purpose="personalization")
    gone = segment({"field": "country", "op": "eq", "value": "FR"}, purpose="personalization")
    SegmentMembership.objects.create(segment=vip, customer=who, entered_at=now)
    SegmentMembership.objects.create(segment=gone, customer=who, entered_at=now, left_at=now)
    score = 0.1234567890123456
    CustomerScore.objects.create(customer=who, kind="churn", score=score, scored_at=now)
    late = PersonalizationRule.objects.create(name="Late", priority=50, offer_key="B")
    first = PersonalizationRule.objects.create(
        name="VIP",
        priority=10,
        offer_key="A",
        segment=vip,
        score_kind="churn",
        score_op="gte",
        score_threshold=score,
    )
    PersonalizationRule.objects.create(name="Off", priority=1, offer_key="C", is_active=False)

    state = selectors.decision_state(who.pk)

    assert state.allowed is True and state.experiment_running is False
    assert state.scores == {"churn": score}  # exact: no decimal round trip
    assert state.segments == {vip.pk}
    assert [r.pk for r in state.rules] == [first.pk, late.pk]
    rule = state.rules[0]
    assert (rule.segment_id, str(rule.segment), rule.score_threshold) == (vip.pk, vip.name, score)
    assert (rule.score_kind, rule.score_op, rule.offer_key) == ("churn", "gte", "A")
    assert selectors.decision_state(uuid.uuid4()) is None


def test_decision_hot_path_is_two_queries(client, django_assert_num_queries):
    who = customer()
    grant([who], "personalization")
    _, token = api_token_create(name="shop", scopes=["personalization:read"], actor="system")
    url = f"/api/v1/customers/{who.pk}/decision"
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    client.get(url, **headers)  # the token's last-used stamp is written once

    with django_assert_num_queries(2):  # token; consent, scores, segments, rules in one
        assert client.get(url, **headers).status_code == 200
