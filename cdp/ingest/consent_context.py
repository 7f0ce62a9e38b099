"""Consent carried by tracking messages: category preferences, Sec-GPC, and merges.

Everything is recorded through the consent package's services; this module only decides which
customers have something new to record, so a steady stream of events costs one query.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import transaction

from cdp.ingest.messages import Message
from cdp.ingest.models import Source
from cdp.profiles.models import Customer, CustomerStatus, Merge
from cdp.profiles.resolution import raw_cursor

logger = logging.getLogger(__name__)


def consent_from_messages(
    messages: Sequence[Message],
    customer_of: dict[int, uuid.UUID],
    *,
    source: Source,
    actor: str,
    gpc: bool,
    user_agent: str | None,
    received_at: dt.datetime,
) -> int:
    """Record the consent carried in the messages (the last preferences per customer) and a
    Sec-GPC opt-out, through the consent services. Only customers whose preferences differ
    from their current state are recorded, so a steady stream of events costs one query; the
    changes of a whole batch go through `consent_record_many` (one ledger append, one audit
    entry), falling back to `consent_apply_category_preferences` per customer if the batch is
    refused. Returns the number of messages whose consent could not be recorded."""
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
    with raw_cursor() as cursor:
        cursor.execute(
            "SELECT customer_id, purpose_code, granted FROM consent_consentstate "
            "WHERE customer_id = ANY(%b::uuid[])",
            [list(touched if gpc else latest)],
        )
        states = {(customer_id, code): granted for customer_id, code, granted in cursor}
    changed: dict[uuid.UUID, Message] = {}
    for customer_id, message in latest.items():
        wanted: dict[str, bool] = {}
        for name, value in message.context["consent"]["categoryPreferences"].items():
            if isinstance(value, bool):
                for code in mapping.get(str(name).strip().lower(), []):
                    wanted[code] = wanted.get(code, True) and value
        if any(states.get((customer_id, code)) != granted for code, granted in wanted.items()):
            changed[customer_id] = message
    if not changed and not gpc:
        return 0
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
    states: dict[tuple[uuid.UUID, str], bool],
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
        decisions.extend(
            d for d in wanted if states.get((customer_id, d.purpose_code)) != d.granted
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
