"""The one answer to "may I use this customer for purpose P?", per customer and set-based."""

import datetime as dt
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.profiles.models import Customer, CustomerStatus
from consent.models import Channel, ConsentState, DefaultRule, Purpose
from consent.selectors import consent_is_allowed, customers_allowed_for
from consent.services import consent_object, consent_record, purpose_update

pytestmark = pytest.mark.django_db


def record(customer, code, granted, **kwargs):
    return consent_record(
        customer=customer,
        purpose_code=code,
        granted=granted,
        channel=Channel.API,
        method="web-form",
        actor="system",
        **kwargs,
    )


def allowed_ids(code):
    return set(customers_allowed_for(code).values_list("id", flat=True))


def test_gdpr_customer_without_a_record_is_not_allowed_for_profiling(make_purpose, customer_in):
    make_purpose("profiling")
    customer = customer_in("gdpr")
    assert consent_is_allowed(customer=customer, purpose_code="profiling") is False
    assert customer.id not in allowed_ids("profiling")


def test_gdpr_customer_is_allowed_after_a_grant(make_purpose, customer_in):
    make_purpose("profiling")
    customer = customer_in("gdpr")
    record(customer, "profiling", True)
    assert consent_is_allowed(customer=customer, purpose_code="profiling") is True
    assert allowed_ids("profiling") == {customer.id}


def test_ccpa_customer_is_allowed_until_opt_out(make_purpose, customer_in):
    # Given a CCPA customer with no record: the opt-out default allows
    make_purpose("profiling")
    customer = customer_in("ccpa")
    assert consent_is_allowed(customer=customer, purpose_code="profiling") is True
    assert customer.id in allowed_ids("profiling")

    # When they opt out, then they are not allowed
    record(customer, "profiling", False)
    assert consent_is_allowed(customer=customer, purpose_code="profiling") is False
    assert customer.id not in allowed_ids("profiling")


def test_other_jurisdiction_follows_the_purposes_configured_default(make_purpose, customer_in):
    purpose = make_purpose("t_other_default", other_default=DefaultRule.OPT_IN)
    customer = customer_in("other")
    assert consent_is_allowed(customer=customer, purpose_code="t_other_default") is False
    purpose_update(purpose=purpose, actor="system", other_default=DefaultRule.OPT_OUT)
    assert consent_is_allowed(customer=customer, purpose_code="t_other_default") is True
    assert customer.id in allowed_ids("t_other_default")


def test_expired_grant_counts_as_not_given(make_purpose, customer_in):
    make_purpose("marketing")
    customer = customer_in("gdpr")
    at = timezone.now() - dt.timedelta(days=2)
    record(customer, "marketing", True, at=at, expires_at=at + dt.timedelta(days=1))
    assert consent_is_allowed(customer=customer, purpose_code="marketing") is False
    assert customer.id not in allowed_ids("marketing")
    # before the expiry it was allowed
    earlier = at + dt.timedelta(hours=1)
    assert consent_is_allowed(customer=customer, purpose_code="marketing", now=earlier) is True
    assert customer.id in set(
        customers_allowed_for("marketing", now=earlier).values_list("id", flat=True)
    )


def test_expired_grant_does_not_fall_back_to_the_ccpa_default(make_purpose, customer_in):
    make_purpose("marketing")
    customer = customer_in("ccpa")
    at = timezone.now() - dt.timedelta(days=2)
    record(customer, "marketing", True, at=at, expires_at=at + dt.timedelta(days=1))
    assert consent_is_allowed(customer=customer, purpose_code="marketing") is False


@pytest.mark.parametrize(
    "status", [CustomerStatus.RESTRICTED, CustomerStatus.ERASED, CustomerStatus.MERGED]
)
def test_customer_not_active_is_never_allowed(make_purpose, customer_in, status):
    make_purpose("analytics")
    customer = customer_in("ccpa")
    record(customer, "analytics", True)
    Customer.objects.filter(pk=customer.pk).update(status=status)
    assert consent_is_allowed(customer=customer, purpose_code="analytics") is False
    assert allowed_ids("analytics") == set()


def test_objection_is_a_withdrawal_with_method_objection(make_purpose, customer_in):
    # Given a CCPA customer allowed for marketing by default
    make_purpose("marketing")
    customer = customer_in("ccpa")
    assert consent_is_allowed(customer=customer, purpose_code="marketing") is True

    # When they object (to direct marketing: every purpose covering marketing)
    events = consent_object(customer=customer, actor="system", channel=Channel.API)

    # Then it is recorded as a withdrawal with method objection, and they are not allowed
    assert [(e.purpose_code, e.granted, e.method) for e in events] == [
        ("marketing", False, "objection")
    ]
    assert consent_is_allowed(customer=customer, purpose_code="marketing") is False
    # and objecting again records nothing new
    assert consent_object(customer=customer, actor="system", channel=Channel.API) == []


def test_unknown_or_inactive_purpose_allows_nobody(make_purpose, customer_in):
    purpose = make_purpose("t_inactive", ccpa_default=DefaultRule.OPT_OUT)
    customer = customer_in("ccpa")
    assert consent_is_allowed(customer=customer, purpose_code="t_inactive") is True
    purpose_update(purpose=purpose, actor="system", is_active=False)
    assert consent_is_allowed(customer=customer, purpose_code="t_inactive") is False
    assert allowed_ids("t_inactive") == set()
    assert consent_is_allowed(customer=customer, purpose_code="no-such-purpose") is False
    assert allowed_ids("no-such-purpose") == set()


def test_the_filter_is_one_query_and_composes(make_purpose, customer_in):
    make_purpose("profiling")
    ccpa, gdpr = customer_in("ccpa"), customer_in("gdpr")
    record(gdpr, "profiling", True)
    with CaptureQueriesContext(connection) as queries:
        ids = set(
            customers_allowed_for(
                "profiling", Customer.objects.filter(country__in=["US", "GB"])
            ).values_list("id", flat=True)
        )
    assert ids == {ccpa.id, gdpr.id}
    assert len(queries) == 1


# --- the set-based filter equals the per-customer rule over random populations -----------------

JURISDICTIONS = ["gdpr", "ccpa", "other"]
STATUSES = [s.value for s in CustomerStatus]
# None: no record; else (granted, expiry offset in hours or None)
STATE = st.one_of(
    st.none(),
    st.tuples(st.booleans(), st.one_of(st.none(), st.integers(min_value=-48, max_value=48))),
)
PERSON = st.tuples(st.sampled_from(JURISDICTIONS), st.sampled_from(STATUSES), STATE)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    people=st.lists(PERSON, min_size=1, max_size=25),
    ccpa_default=st.sampled_from(list(DefaultRule.values)),
    other_default=st.sampled_from(list(DefaultRule.values)),
    active=st.booleans(),
)
def test_filter_equals_per_customer_selector(people, ccpa_default, other_default, active):
    # Given a purpose with drawn defaults and a population with drawn states
    code = f"p{uuid.uuid4().hex[:10]}"
    purpose = Purpose.objects.create(
        code=code,
        title=code,
        notice_text="n",
        notice_hash="0" * 64,
        ccpa_default=ccpa_default,
        other_default=other_default,
        is_active=active,
    )
    now = timezone.now()
    customers = Customer.objects.bulk_create(
        [Customer(jurisdiction=j, status=s) for j, s, _ in people]
    )
    ConsentState.objects.bulk_create(
        [
            ConsentState(
                customer=customer,
                purpose=purpose,
                granted=state[0],
                since=now - dt.timedelta(days=3),
                expires_at=None if state[1] is None else now + dt.timedelta(hours=state[1]),
                channel=Channel.API,
                method="m",
                purpose_version=1,
                event_seq=0,
            )
            for customer, (_, _, state) in zip(customers, people, strict=True)
            if state is not None
        ]
    )
    ids = [c.id for c in customers]

    # When both answers are computed
    from_filter = set(
        customers_allowed_for(code, Customer.objects.filter(id__in=ids), now=now).values_list(
            "id", flat=True
        )
    )
    per_customer = {
        c.id for c in customers if consent_is_allowed(customer=c, purpose_code=code, now=now)
    }

    # Then they agree, customer by customer
    assert from_filter == per_customer
