"""Consent carried by tracking messages: category preferences, Sec-GPC, and merges.

Everything is recorded through the consent package's services; this module only decides which
customers have something new to record, so a steady stream of events costs one query.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.db import transaction
from django.db.models.expressions import RawSQL

from cdp.db import raw_cursor
from cdp.ingest.messages import Message
from cdp.ingest.models import Source
from cdp.profiles.models import Customer, CustomerStatus, Merge

logger = logging.getLogger(__name__)


class HeldState(NamedTuple):
    """A stored consent decision, as much of it as the consent rule reads (a tuple: a batch
    reads one per customer and purpose)."""

    granted: bool
    expires_at: dt.datetime | None


@dataclass(slots=True)
class HeldCustomer:
    """A customer's status, jurisdiction and consent states (by purpose code)."""

    status: str
    jurisdiction: str
    states: dict[str, HeldState]


@dataclass
class BatchConsent:
    """What a batch's customers hold when its consent step starts, read once: the status and
    jurisdiction of each and every consent state, and (filled in as the step goes) the
    customers whose consent the batch changed, whose stored state is then newer than this."""

    customers: dict[uuid.UUID, HeldCustomer]
    recorded: set[uuid.UUID] = field(default_factory=set)


# Index probes per customer (the primary key, the unique (customer, purpose) index): a plain
# join of the array has the planner hash whole tables, and `= ANY(array)` scans the state table.
# The locking clause and OFFSET 0 keep the LATERAL subqueries from being flattened into such a
# join. The ordinality comes back instead of the id: an integer decodes for nothing, a UUID
# costs a Python object per row. Each customer is locked FOR KEY SHARE until the batch commits:
# the insert half of the events' customer key (see `Event.customer`); the ids come sorted, so
# the locks are taken in the order erasure takes its own.
_HELD = """
SELECT u.n, c.status, c.jurisdiction, s.purpose_code, s.granted, s.expires_at
FROM unnest(%b::uuid[]) WITH ORDINALITY AS u(id, n)
CROSS JOIN LATERAL (
    SELECT status, jurisdiction FROM profiles_customer WHERE id = u.id FOR KEY SHARE
) AS c
LEFT JOIN LATERAL (
    SELECT purpose_code, granted, expires_at FROM consent_consentstate
    WHERE customer_id = u.id OFFSET 0
) AS s ON true
"""


def batch_consent_read(customer_ids: Collection[uuid.UUID]) -> BatchConsent:
    """Status, jurisdiction and consent states of the batch's customers, in one query: what
    both the consent carried in the messages and the analytics decision compare against.

    Locks the customers (FOR KEY SHARE) until the transaction ends, so that the batch may store
    events for them: a customer deleted meanwhile (erased) is not returned, and so is allowed
    nothing."""
    ids = sorted(customer_ids)
    by_position: dict[int, HeldCustomer] = {}
    if ids:
        with raw_cursor() as cursor:
            cursor.execute(_HELD, [ids])
            rows = cursor.fetchall()  # loaded in one call; iterating the cursor is per row
        for n, status, jurisdiction, code, granted, expires_at in rows:
            held = by_position.get(n)
            if held is None:
                held = by_position[n] = HeldCustomer(status, jurisdiction, {})
            if code is not None:
                held.states[code] = HeldState(granted, expires_at)
    return BatchConsent({ids[n - 1]: held for n, held in by_position.items()})


def customers_allowed(
    purpose_code: str, held: BatchConsent, now: dt.datetime | None = None
) -> set[uuid.UUID]:
    """The customers of `held` that may be used for `purpose_code`: `consent_decide` (the
    consent package's rule) on what was read, and for customers whose consent this batch
    recorded, `customers_allowed_for` (the same rule in SQL) on the fresh state."""
    from django.utils import timezone

    from consent.models import Purpose
    from consent.selectors import consent_decide, customers_allowed_for

    now = now or timezone.now()
    # A raw read of the one row (no query compilation: this runs for every batch).
    purpose = next(
        iter(Purpose.objects.raw("SELECT * FROM consent_purpose WHERE code = %s", [purpose_code])),
        None,
    )
    # The rule reads only status, jurisdiction and the state (purpose and time are fixed here),
    # and a batch's customers share a few such combinations: decided once per combination.
    decided: dict[tuple[str, str, HeldState | None], bool] = {}
    allowed = set()
    recorded = held.recorded
    for cid, customer in held.customers.items():
        if cid in recorded:
            continue
        state = customer.states.get(purpose_code)
        combination = (customer.status, customer.jurisdiction, state)
        decision = decided.get(combination)
        if decision is None:
            decision = decided[combination] = consent_decide(
                status=customer.status,
                jurisdiction=customer.jurisdiction,
                purpose=purpose,
                state=state,  # type: ignore[arg-type]
                now=now,
            )
        if decision:
            allowed.add(cid)
    if held.recorded:
        # The ids as one array parameter: an IN list of 500 values costs more to build.
        fresh = Customer.objects.filter(
            id__in=RawSQL("SELECT unnest(%s::uuid[])", (list(held.recorded),))
        )
        allowed.update(
            customers_allowed_for(purpose_code, fresh, now=now).values_list("id", flat=True)
        )
    return allowed


def consent_from_messages(
    messages: Sequence[Message],
    customer_of: dict[int, uuid.UUID],
    *,
    source: Source,
    actor: str,
    gpc: bool,
    user_agent: str | None,
    received_at: dt.datetime,
    held: BatchConsent | None = None,
) -> int:
    """Record the consent carried in the messages (the last preferences per customer) and a
    Sec-GPC opt-out, through the consent services. Only customers whose preferences differ
    from their current state are recorded, so a steady stream of events costs one query; the
    changes of a whole batch go through `consent_record_many` (one ledger append, one audit
    entry), falling back to `consent_apply_category_preferences` per customer if the batch is
    refused. Returns the number of messages whose consent could not be recorded.

    With `held` (the batch's states, read by `batch_consent_read`) nothing is read again, and
    every customer whose consent may have been recorded is added to `held.recorded`."""
    from consent.conf import category_map
    from consent.errors import ConsentError
    from consent.services import (
        consent_apply_category_preferences,
        consent_apply_gpc,
        consent_record_many,
    )

    latest: dict[uuid.UUID, Message] = {}
    for message in messages:
        consent = message.context.get("consent")
        if isinstance(consent, dict) and isinstance(consent.get("categoryPreferences"), dict):
            latest[customer_of[message.index]] = message
    touched = set(customer_of.values())
    if not latest and not gpc:
        return 0
    mapping = category_map()
    states: dict[uuid.UUID, dict[str, HeldState]]
    if held is not None:
        states = {cid: customer.states for cid, customer in held.customers.items()}
    else:
        states = {}
        with raw_cursor() as cursor:
            cursor.execute(
                "SELECT s.customer_id, s.purpose_code, s.granted "
                "FROM unnest(%b::uuid[]) AS u(id) "
                "JOIN consent_consentstate s ON s.customer_id = u.id",
                [list(touched if gpc else latest)],
            )
            for customer_id, code, granted in cursor:
                states.setdefault(customer_id, {})[code] = HeldState(granted, None)
    changed: dict[uuid.UUID, Message] = {}
    none: dict[str, HeldState] = {}
    # The purposes each distinct set of preferences asks for (a batch's messages mostly carry
    # the same few), computed once per set.
    asked: dict[Any, dict[str, bool]] = {}
    for customer_id, message in latest.items():
        preferences = message.context["consent"]["categoryPreferences"]
        try:
            memo_key: Any = tuple(preferences.items())
            wanted = asked.get(memo_key)
        except TypeError:  # an unhashable value (ignored below, as it is not a bool)
            memo_key, wanted = None, None
        if wanted is None:
            wanted = {}
            for name, value in preferences.items():
                if isinstance(value, bool):
                    for code in mapping.get(str(name).strip().lower(), []):
                        wanted[code] = wanted.get(code, True) and value
            if memo_key is not None:
                asked[memo_key] = wanted
        own = states.get(customer_id, none)
        for code, granted in wanted.items():
            state = own.get(code)
            if state is None or state.granted != granted:
                changed[customer_id] = message
                break
    if not changed and not gpc:
        return 0
    if held is not None:
        held.recorded.update(touched if gpc else changed)
    customers = {
        c.id: c
        for c in Customer.objects.filter(
            id__in=list(changed) + (list(touched) if gpc else [])
        ).only("id", "status", "jurisdiction")
    }
    errors = 0
    active = {
        cid: message
        for cid, message in changed.items()
        if (c := customers.get(cid)) is not None and c.status == CustomerStatus.ACTIVE
    }
    decisions = _preference_decisions(
        active,
        customers,
        states,
        mapping,
        source=source,
        received_at=received_at,
        user_agent=user_agent,
    )
    try:
        if decisions:
            with transaction.atomic():
                consent_record_many(decisions=decisions, actor=actor)
        active = {}
    except ConsentError as exc:
        # One bad decision fails the batch: record customer by customer instead.
        logger.warning("batch consent from events refused (%s); per customer", type(exc).__name__)
    for customer_id, message in active.items():
        ip = message.context.get("ip")
        try:
            consent_apply_category_preferences(
                customer=customers[customer_id],
                preferences=message.context["consent"]["categoryPreferences"],
                message_id=message.message_id,
                source=str(source.id),
                actor=actor,
                at=min(message.timestamp, received_at),
                ip=ip if isinstance(ip, str) else None,
                user_agent=user_agent,
            )
        except ConsentError as exc:
            errors += 1
            logger.warning("consent from event not recorded: %s", type(exc).__name__)
    if gpc:
        for customer_id in touched:
            customer = customers.get(customer_id)
            if customer is None or customer.status != CustomerStatus.ACTIVE:
                continue
            try:
                consent_apply_gpc(
                    customer=customer, actor=actor, user_agent=user_agent, via="event"
                )
            except ConsentError as exc:
                errors += 1
                logger.warning("GPC opt-out not recorded: %s", type(exc).__name__)
    return errors


def _preference_decisions(
    latest: dict[uuid.UUID, Message],
    customers: dict[uuid.UUID, Customer],
    states: dict[uuid.UUID, dict[str, HeldState]],
    mapping: dict[str, list[str]],
    *,
    source: Source,
    received_at: dt.datetime,
    user_agent: str | None,
) -> list[Any]:
    """The ledger entries `consent_apply_category_preferences` would write, for many customers
    at once (the consent package's pure `category_preference_decisions`), keeping only the
    purposes whose state changes."""
    from consent.models import Purpose
    from consent.services.signals import category_preference_decisions

    known = set(Purpose.objects.filter(is_active=True).values_list("code", flat=True))
    decisions = []
    for customer_id, message in latest.items():
        ip = message.context.get("ip")
        wanted, _ = category_preference_decisions(
            customer=customers[customer_id],
            preferences=message.context["consent"]["categoryPreferences"],
            mapping=mapping,
            known=known,
            message_id=message.message_id,
            source=str(source.id),
            at=min(message.timestamp, received_at),
            ip=ip if isinstance(ip, str) else None,
            user_agent=user_agent,
        )
        own = states.get(customer_id, {})
        decisions.extend(
            d
            for d in wanted
            if (state := own.get(d.purpose_code)) is None or state.granted != d.granted
        )
    return decisions


def merges_respect_consent(merges: Sequence[Merge], *, actor: str) -> None:
    """A withdrawal on either side of a merge holds for the merged profile: the survivor gets
    a withdrawal for every purpose the merged profile had withdrawn and it had not; and the
    withdrawal hooks run for the merged profile, so what was derived from it goes."""
    from consent.models import Channel, ConsentState
    from consent.services import ConsentDecision, consent_customer_restricted, consent_record_many

    pairs = {m.from_customer_id: m for m in merges}
    survivors = {m.into_customer_id for m in merges}
    states = ConsentState.objects.filter(customer_id__in=[*pairs, *survivors]).values_list(
        "customer_id", "purpose_id", "granted"
    )
    held = {(customer_id, code): granted for customer_id, code, granted in states}
    customers = {
        c.id: c
        for c in Customer.objects.filter(id__in=survivors).only("id", "status", "jurisdiction")
    }
    decisions = [
        ConsentDecision(
            customer=customers[merge.into_customer_id],
            purpose_code=code,
            granted=False,
            channel=Channel.EVENT,
            method="merge",
            proof={"merge": str(merge.id)},
        )
        for (customer_id, code), granted in sorted(held.items(), key=str)
        if (merge := pairs.get(customer_id)) is not None
        and not granted
        and held.get((merge.into_customer_id, code)) is not False
        and merge.into_customer_id in customers
    ]
    if decisions:
        consent_record_many(decisions=decisions, actor=actor)
    for merge in merges:
        consent_customer_restricted(customer_id=merge.from_customer_id)
