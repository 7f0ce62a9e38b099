"""The one answer to "may I use this customer for purpose P?", and reads of consent history.

The rule, for a customer and an active purpose (an unknown or inactive purpose allows nobody):

1. a customer who is not active (restricted, merged, erased) is never allowed;
2. if a decision is on record, it decides: a grant that has not expired allows; a withdrawal
   (including an objection, recorded as a withdrawal with method "objection", a GPC opt-out and
   an expiry) does not;
3. with no decision, the jurisdiction's default decides: GDPR is always opt-in (not allowed);
   CCPA and other jurisdictions follow the purpose's `ccpa_default` / `other_default`.

`consent_decide` states the rule in Python; `customers_allowed_for` is the same rule as one SQL
query. A property test holds them equal. Nothing else decides consent.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from django.db.models import Exists, FilteredRelation, Q, QuerySet
from django.utils import timezone

from cdp.profiles.jurisdiction import Jurisdiction
from cdp.profiles.models import Customer, CustomerStatus, IdentityKind
from cdp.profiles.selectors import customer_find_by_identifier
from consent.errors import CustomerUnknown
from consent.models import ConsentEvent, ConsentState, DefaultRule, Purpose


def consent_decide(
    *,
    status: str,
    jurisdiction: str,
    purpose: Purpose | None,
    state: ConsentState | None,
    now: dt.datetime,
) -> bool:
    """The rule itself (see the module docstring), on values already loaded."""
    if purpose is None or not purpose.is_active or status != CustomerStatus.ACTIVE:
        return False
    if state is not None:
        return state.granted and (state.expires_at is None or state.expires_at > now)
    return purpose.default_for(jurisdiction) == DefaultRule.OPT_OUT


def consent_is_allowed(
    *, customer: Customer, purpose_code: str, now: dt.datetime | None = None
) -> bool:
    """May `customer` be used for `purpose_code` right now? Reads status fresh (three queries)."""
    now = now or timezone.now()
    row = Customer.objects.filter(pk=customer.pk).values("status", "jurisdiction").first()
    if row is None:
        return False
    purpose = Purpose.objects.filter(code=purpose_code).first()
    state = ConsentState.objects.filter(customer_id=customer.pk, purpose_id=purpose_code).first()
    return consent_decide(
        status=row["status"],
        jurisdiction=row["jurisdiction"],
        purpose=purpose,
        state=state,
        now=now,
    )


def customers_allowed_for(
    purpose_code: str,
    queryset: QuerySet[Customer] | None = None,
    *,
    now: dt.datetime | None = None,
) -> QuerySet[Customer]:
    """The customers of `queryset` (default: all) that may be used for `purpose_code`.

    One SQL query when evaluated: a LEFT JOIN to the purpose's state row and two uncorrelated
    EXISTS on the purpose (evaluated once), so it scales with a hash join, not a query per
    customer. Compose it further (`.filter()`, `.values("id")` as a subquery) freely.
    """
    now = now or timezone.now()
    qs = Customer.objects.all() if queryset is None else queryset
    purpose = Purpose.objects.filter(code=purpose_code, is_active=True)
    defaults_out = (
        Q(jurisdiction=Jurisdiction.CCPA) & Exists(purpose.filter(ccpa_default=DefaultRule.OPT_OUT))
    ) | (
        ~Q(jurisdiction__in=[Jurisdiction.GDPR, Jurisdiction.CCPA])
        & Exists(purpose.filter(other_default=DefaultRule.OPT_OUT))
    )
    granted_now = (
        Q(_consent__granted=True)
        & (Q(_consent__expires_at__isnull=True) | Q(_consent__expires_at__gt=now))
        & Exists(purpose)
    )
    return (
        qs.annotate(
            _consent=FilteredRelation(
                "consent_states", condition=Q(consent_states__purpose_id=purpose_code)
            )
        )
        .filter(status=CustomerStatus.ACTIVE)
        .filter(granted_now | (Q(_consent__id__isnull=True) & defaults_out))
    )


@dataclass(frozen=True)
class PurposeConsent:
    """A customer's position on one purpose, for the admin page and the API."""

    purpose: Purpose
    state: ConsentState | None
    allowed: bool
    default: str


def consent_overview(*, customer: Customer, now: dt.datetime | None = None) -> list[PurposeConsent]:
    """Every active purpose (and any inactive one with a decision) with the customer's state.

    Two queries, whatever the number of purposes.
    """
    now = now or timezone.now()
    states = {s.purpose_id: s for s in ConsentState.objects.filter(customer_id=customer.pk)}
    purposes = Purpose.objects.filter(Q(is_active=True) | Q(code__in=list(states)))
    return [
        PurposeConsent(
            purpose=purpose,
            state=states.get(purpose.code),
            allowed=consent_decide(
                status=customer.status,
                jurisdiction=customer.jurisdiction,
                purpose=purpose,
                state=states.get(purpose.code),
                now=now,
            ),
            default=purpose.default_for(customer.jurisdiction),
        )
        for purpose in purposes
    ]


def consent_history(*, customer_id: uuid.UUID) -> QuerySet[ConsentEvent]:
    """The customer's ledger entries, newest first (works after erasure: ids only)."""
    return ConsentEvent.objects.filter(customer_id=customer_id).order_by("-seq")


def consent_customer_resolve(
    *,
    customer_id: uuid.UUID | None = None,
    user_id: str | None = None,
    email: str | None = None,
) -> Customer:
    """The customer named by exactly one identifier (blind-index lookup); CustomerUnknown if none.

    A merged customer resolves to the profile it was merged into.
    """
    customer: Customer | None = None
    if customer_id is not None:
        customer = Customer.objects.filter(pk=customer_id).first()
    elif user_id:
        customer = customer_find_by_identifier(IdentityKind.USER_ID, user_id)
    elif email:
        customer = customer_find_by_identifier(IdentityKind.EMAIL, email)
    hops = 0
    while customer is not None and customer.merged_into_id and hops < 5:
        customer = Customer.objects.filter(pk=customer.merged_into_id).first()
        hops += 1
    if customer is None:
        raise CustomerUnknown()
    return customer
