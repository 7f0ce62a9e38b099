"""GET /api/v1/customers/{id}/recommendations and /decision: consent, scopes, roles, content."""

from __future__ import annotations

import uuid

import pytest

from cdp.api.services import api_token_create
from cdp.profiles.roles import ANALYST, COMPLIANCE_OFFICER, CONSENT_ADMIN, PLATFORM_ADMIN
from segmentation.personalization.models import (
    Assignment,
    CustomerScore,
    Experiment,
    PersonalizationRule,
)
from segmentation.personalization.services import model_run_create, model_run_execute
from segmentation.segments.models import SegmentMembership
from tests.roles import client_for
from tests.segmentation.personalization.conftest import AS_OF
from tests.segmentation.segments.conftest import segment

pytestmark = pytest.mark.django_db


def bearer(*scopes: str) -> dict[str, str]:
    _, token = api_token_create(name="shop-frontend", scopes=list(scopes), actor="system")
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.fixture
def trained(shop):
    run = model_run_create(
        kind="recommendations", actor="t", params={"as_of": AS_OF.isoformat()}, enqueue=False
    )
    model_run_execute(run_id=run.pk)
    return shop


def recs_url(customer_id) -> str:
    return f"/api/v1/customers/{customer_id}/recommendations"


def decision_url(customer_id) -> str:
    return f"/api/v1/customers/{customer_id}/decision"


def test_recommendations_for_a_consented_customer(client, trained):
    who = trained["consented"][0]

    response = client.get(recs_url(who.pk) + "?k=5", **bearer("personalization:read"))

    assert response.status_code == 200
    body = response.json()
    assert body["customer_id"] == str(who.pk)
    assert len(body["items"]) == 5
    assert all(i["item"].startswith("A") for i in body["items"])
    assert body["experiment"] is None


def test_cold_start_customer_gets_the_popularity_fallback(client, trained):
    response = client.get(recs_url(trained["newcomer"].pk), **bearer("personalization:read"))

    assert response.status_code == 200
    assert {i["source"] for i in response.json()["items"]} == {"popularity"}
    assert len(response.json()["items"]) == 10


def test_customer_without_personalization_gets_403_with_a_reason(client, trained):
    headers = bearer("personalization:read")

    for url in (recs_url(trained["outsider"].pk), decision_url(trained["outsider"].pk)):
        response = client.get(url, **headers)
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["code"] == "personalization_not_allowed"
        assert "consent does not allow personalization" in error["message"]


def test_unknown_customer_is_404(client, trained):
    response = client.get(recs_url(uuid.uuid4()), **bearer("personalization:read"))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "customer_not_found"


def test_bad_k_is_a_400(client, trained):
    response = client.get(
        recs_url(trained["consented"][0].pk) + "?k=lots", **bearer("personalization:read")
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "recommendations_k_invalid"


@pytest.mark.parametrize("scopes", [(), ("segments:read",)])
def test_token_without_the_scope_is_refused(client, trained, scopes):
    who = trained["consented"][0]

    assert client.get(recs_url(who.pk), **bearer(*scopes)).status_code == 403
    assert client.get(decision_url(who.pk), **bearer(*scopes)).status_code == 403


@pytest.mark.parametrize(
    ("role", "status"),
    [
        (None, 401),
        (CONSENT_ADMIN, 403),
        (COMPLIANCE_OFFICER, 403),
        (ANALYST, 403),
        (PLATFORM_ADMIN, 200),
    ],
)
def test_session_authorization_matrix(django_user_model, trained, role, status):
    who = trained["consented"][0]
    client = client_for(django_user_model, role)

    got = {client.get(recs_url(who.pk)).status_code, client.get(decision_url(who.pk)).status_code}

    assert got == {status}


def rule(name, priority, offer, **fields):
    return PersonalizationRule.objects.create(
        name=name, priority=priority, offer_key=offer, **fields
    )


def test_decision_returns_the_first_matching_rule_and_why(client, trained):
    who, other = trained["consented"][0], trained["consented"][1]
    at_risk = segment({"field": "country", "op": "eq", "value": "DE"}, purpose="personalization")
    SegmentMembership.objects.create(segment=at_risk, customer=who, entered_at=AS_OF)
    CustomerScore.objects.create(customer=who, kind="churn", score=0.82, scored_at=AS_OF)
    CustomerScore.objects.create(customer=other, kind="churn", score=0.2, scored_at=AS_OF)
    rule(
        "Win back",
        10,
        "WINBACK10",
        segment=at_risk,
        score_kind="churn",
        score_op="gt",
        score_threshold=0.7,
    )
    rule("Everyone", 100, "NEWSLETTER")
    headers = bearer("personalization:read")

    body = client.get(decision_url(who.pk), **headers).json()
    assert body["offer_key"] == "WINBACK10"
    assert body["matched_rule"]["name"] == "Win back"
    assert body["why"] == [f"in segment '{at_risk}'", "churn score 0.820 > 0.7"]

    body = client.get(decision_url(other.pk), **headers).json()
    assert body["offer_key"] == "NEWSLETTER"
    assert body["why"] == ["rule has no condition (matches everyone)"]


def test_decision_without_a_matching_rule_says_so(client, trained):
    rule(
        "High spenders",
        10,
        "VIP",
        score_kind="expected_spend",
        score_op="gte",
        score_threshold=1000,
    )

    body = client.get(
        decision_url(trained["consented"][0].pk), **bearer("personalization:read")
    ).json()

    assert body["offer_key"] is None and body["matched_rule"] is None
    assert body["why"] == ["no active rule matched"]


def test_running_experiment_assigns_exposes_and_overrides(client, trained):
    rule("Everyone", 100, "NEWSLETTER")
    experiment = Experiment.objects.create(
        key="offer-test", name="Offer test", target="decision", status="running", holdout=0.2
    )
    experiment.variants.create(name="control", position=0)
    experiment.variants.create(name="discount", position=1, config={"offer_key": "TENOFF"})
    headers = bearer("personalization:read")

    offers = {}
    for who in trained["consented"]:
        body = client.get(decision_url(who.pk), **headers).json()
        client.get(decision_url(who.pk), **headers)  # a second exposure changes nothing
        offers[body["experiment"]["variant"]] = body["offer_key"]

    assert Assignment.objects.filter(experiment=experiment).count() == 24
    assert offers.get("control", "NEWSLETTER") == "NEWSLETTER"
    assert offers.get("discount", "TENOFF") == "TENOFF"
    assert offers.get("holdout") is None
    assert set(offers) <= {"control", "discount", "holdout"}


def test_recommendation_experiment_can_switch_to_popularity(client, trained):
    experiment = Experiment.objects.create(
        key="recs-test", name="Recs", target="recommendations", status="running"
    )
    experiment.variants.create(name="popular", position=0, config={"strategy": "popularity"})
    who = trained["consented"][0]

    body = client.get(recs_url(who.pk), **bearer("personalization:read")).json()

    assert body["experiment"] == {"key": "recs-test", "variant": "popular"}
    assert {i["source"] for i in body["items"]} == {"popularity"}


def test_recommendations_hot_path_is_two_queries(client, trained, django_assert_num_queries):
    headers = bearer("personalization:read")
    url = recs_url(trained["consented"][0].pk)
    client.get(url, **headers)  # the token's last-used stamp is written once

    with django_assert_num_queries(2):  # token; consent + list + experiment check in one
        assert client.get(url, **headers).status_code == 200
