"""Decisions that arrive as signals: GPC, objections, event consent categories, expiry and
restriction. Each builds decisions and records them through `recording._record`."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from cdp.audit.services import SYSTEM
from cdp.logging import redact
from cdp.profiles.models import Customer
from consent.ledger import proof_hash
from consent.models import (
    Channel,
    ConsentEvent,
    ConsentState,
    Coverage,
    Purpose,
)
from consent.services.recording import (
    METHOD_CATEGORY_PREFERENCES,
    METHOD_EXPIRY,
    METHOD_GPC,
    METHOD_OBJECTION,
    ConsentDecision,
    _record,
    withdrawal_hooks_enqueue,
)


def _active_purposes_covering(coverage: str) -> list[str]:
    return list(
        Purpose.objects.filter(is_active=True, covers__contains=[coverage]).values_list(
            "code", flat=True
        )
    )


def consent_apply_gpc(
    *,
    customer: Customer,
    actor: str,
    ip: str | None = None,
    user_agent: str | None = None,
    via: str = "api",
) -> list[ConsentEvent]:
    """A `Sec-GPC: 1` signal: opt out of every purpose covering sale/sharing (method "gpc").

    Idempotent: a purpose already withdrawn gets no new entry. The absence of the signal later is
    never treated as an opt-in; only an explicit grant changes the state back.
    """
    decisions = [
        ConsentDecision(
            customer=customer,
            purpose_code=code,
            granted=False,
            channel=Channel.GPC,
            method=METHOD_GPC,
            ip=ip,
            user_agent=user_agent,
            proof={"signal": "Sec-GPC: 1", "via": via},
        )
        for code in _active_purposes_covering(Coverage.SALE_SHARING)
    ]
    if not decisions:
        return []
    return _record(
        decisions, actor=actor, keep=lambda d, s: s is None or s.granted, audit_each=True
    ).events


def consent_object(
    *,
    customer: Customer,
    actor: str,
    channel: str,
    purpose_codes: Sequence[str] | None = None,
    reason: str | None = None,
) -> list[ConsentEvent]:
    """An objection (GDPR Art. 21): a withdrawal recorded with method "objection".

    Without `purpose_codes`, it covers every purpose that covers marketing (direct marketing and
    the profiling for it, Art. 21(2)-(3)). The selector needs nothing else: an objection is a
    withdrawn state until the customer grants again. Purposes already objected to are skipped.
    """
    codes = (
        list(purpose_codes)
        if purpose_codes is not None
        else _active_purposes_covering(Coverage.MARKETING)
    )
    decisions = [
        ConsentDecision(
            customer=customer,
            purpose_code=code,
            granted=False,
            channel=channel,
            method=METHOD_OBJECTION,
            reason=reason,
        )
        for code in codes
    ]
    if not decisions:
        return []
    return _record(
        decisions,
        actor=actor,
        keep=lambda d, s: s is None or s.granted or s.method != METHOD_OBJECTION,
        audit_each=True,
    ).events


@dataclass(frozen=True)
class CategoryReport:
    recorded: int
    unchanged: int
    ignored_categories: int
    unknown_purposes: int


def _map_categories(
    preferences: dict[str, Any], mapping: dict[str, list[str]]
) -> tuple[dict[str, bool], dict[str, list[str]], int]:
    """Purposes wanted by a preference map (a withdrawal wins when two categories name one
    purpose), the categories behind each, and how many entries were ignored."""
    wanted: dict[str, bool] = {}
    categories: dict[str, list[str]] = {}
    ignored = 0
    for name, value in preferences.items():
        codes = mapping.get(str(name).strip().lower())
        if codes is None or not isinstance(value, bool):
            ignored += 1
            continue
        for code in codes:
            wanted[code] = wanted.get(code, True) and value
            categories.setdefault(code, []).append(str(name))
    return wanted, categories, ignored


def category_preference_decisions(
    *,
    customer: Customer,
    preferences: dict[str, Any],
    mapping: dict[str, list[str]],
    known: set[str],
    message_id: str,
    source: str,
    at: dt.datetime | None,
    ip: str | None,
    user_agent: str | None,
) -> tuple[list[ConsentDecision], int]:
    """The decisions one message's `categoryPreferences` asks for, for purposes in `known`,
    and the count of ignored categories. Pure: no query, no write. Callers drop the decisions
    that change nothing (the service per customer, ingestion for a whole batch at once)."""
    wanted, categories, ignored = _map_categories(preferences, mapping)
    reference = message_id if redact(message_id) == message_id else None
    decisions = [
        ConsentDecision(
            customer=customer,
            purpose_code=code,
            granted=granted,
            channel=Channel.EVENT,
            method=METHOD_CATEGORY_PREFERENCES,
            at=at,
            ip=ip,
            user_agent=user_agent,
            proof={
                "message_id": reference,
                "message_id_hash": None if reference else proof_hash("msg", message_id).hex(),
                "source": source,
                "categories": sorted(categories[code]),
            },
        )
        for code, granted in sorted(wanted.items())
        if code in known
    ]
    return decisions, ignored


def consent_apply_category_preferences(
    *,
    customer: Customer,
    preferences: dict[str, Any],
    message_id: str,
    source: str,
    actor: str,
    at: dt.datetime | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> CategoryReport:
    """Turn Segment's `context.consent.categoryPreferences` into ledger entries.

    Categories map to purposes through `CDP_CONSENT_CATEGORY_MAP`; unknown categories and
    non-boolean values are ignored and counted. When two categories map to one purpose with
    different answers, the withdrawal wins. Only changes are recorded (every event repeats the
    preferences), with the message id and source as proof.
    """
    from consent.conf import category_map

    mapping = category_map()
    wanted, _, ignored = _map_categories(preferences, mapping)
    known = set(
        Purpose.objects.filter(code__in=wanted, is_active=True).values_list("code", flat=True)
    )
    decisions, _ = category_preference_decisions(
        customer=customer,
        preferences=preferences,
        mapping=mapping,
        known=known,
        message_id=message_id,
        source=source,
        at=at,
        ip=ip,
        user_agent=user_agent,
    )
    events = (
        _record(
            decisions,
            actor=actor,
            keep=lambda d, s: s is None or s.granted != d.granted,
            audit_each=True,
        ).events
        if decisions
        else []
    )
    return CategoryReport(
        recorded=len(events),
        unchanged=len(decisions) - len(events),
        ignored_categories=ignored,
        unknown_purposes=len(wanted) - len(known),
    )


def consent_expire_due(*, now: dt.datetime | None = None, batch_size: int = 1_000) -> int:
    """Write an expiry into the ledger for every grant whose `expires_at` has passed.

    The selector already treats an expired grant as not given; this makes it a withdrawal on
    record (channel and method "expiry", at the moment it expired) and runs the withdrawal hooks.
    Safe to run concurrently (rows are claimed with SKIP LOCKED) and twice. Returns the count.
    """
    now = now or timezone.now()
    total = 0
    while True:
        with transaction.atomic():
            due = list(
                ConsentState.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(granted=True, expires_at__lte=now)
                .select_related("customer")
                .only(
                    "purpose_id",
                    "purpose_version",
                    "expires_at",
                    "event_seq",
                    "customer__id",
                    "customer__status",
                    "customer__jurisdiction",
                )[:batch_size]
            )
            if not due:
                return total
            decisions = [
                ConsentDecision(
                    customer=state.customer,
                    purpose_code=state.purpose_id,
                    granted=False,
                    channel=Channel.EXPIRY,
                    method=METHOD_EXPIRY,
                    at=state.expires_at,
                    notice_version=state.purpose_version,
                    proof={"expired_grant_seq": state.event_seq},
                )
                for state in due
            ]
            total += len(_record(decisions, actor=SYSTEM, system=True).events)


def consent_customer_restricted(*, customer_id: uuid.UUID) -> None:
    """Processing of a customer was restricted (or the customer erased or merged): after commit,
    run the withdrawal hooks for every purpose, so derived data goes. Called by privacy.

    The selector already refuses a restricted customer; this removes what was derived earlier.
    """
    pairs = [(customer_id, code) for code in Purpose.objects.values_list("code", flat=True)]
    if pairs:
        transaction.on_commit(lambda: withdrawal_hooks_enqueue(pairs))
