"""Legal deadlines per regime and request type (PRIVACY.md), as pure functions.

GDPR (Art. 12(3)): one month from receipt, extendable once by two further months with the
reason told to the subject within the first month; an objection to direct marketing is honoured
at once (due the next day). CCPA/CPRA (11 CCR 7021, 7026): know/delete/correct acknowledged
within 10 business days and answered within 45 calendar days, extendable once by 45; opt-outs
of sale/sharing and limits on sensitive data within 15 business days. Business days are Monday
to Friday; public holidays are not modelled, which only makes a deadline earlier, never later.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

GDPR = "gdpr"
CCPA = "ccpa"
ACK_TYPES = {"access", "portability", "erasure", "rectification"}
CCPA_FAST_TYPES = {"opt_out_sale", "restriction", "objection"}
NOT_EXTENDABLE = {"opt_out_sale", "objection"}


def add_months(when: dt.datetime, months: int) -> dt.datetime:
    """The same day `months` later, clamped to the month's last day (31 Jan + 1 = 28/29 Feb)."""
    month0 = when.month - 1 + months
    year, month = when.year + month0 // 12, month0 % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


def add_business_days(when: dt.datetime, days: int) -> dt.datetime:
    result = when
    added = 0
    while added < days:
        result += dt.timedelta(days=1)
        if result.weekday() < 5:
            added += 1
    return result


@dataclass(frozen=True)
class Deadlines:
    due_at: dt.datetime
    ack_due_at: dt.datetime | None = None


def deadlines_for(*, regime: str, request_type: str, received_at: dt.datetime) -> Deadlines:
    """The answer deadline and, under CCPA, the acknowledgement deadline."""
    if request_type == "opt_out_sale":
        return Deadlines(add_business_days(received_at, 15))
    if regime == CCPA:
        if request_type in CCPA_FAST_TYPES:
            return Deadlines(add_business_days(received_at, 15))
        return Deadlines(received_at + dt.timedelta(days=45), add_business_days(received_at, 10))
    if request_type == "objection":
        return Deadlines(received_at + dt.timedelta(days=1))
    return Deadlines(add_months(received_at, 1))


def extended_due(*, regime: str, request_type: str, due_at: dt.datetime) -> dt.datetime:
    """The deadline after the one allowed extension (ValueError when the type has none)."""
    if request_type in NOT_EXTENDABLE:
        raise ValueError(f"a {request_type} request cannot be extended")
    if regime == CCPA:
        return due_at + dt.timedelta(days=45)
    return add_months(due_at, 2)


def regime_for(jurisdiction: str | None) -> str:
    """The proposed regime: CCPA for Californian subjects, otherwise GDPR (the stricter rules)."""
    return CCPA if jurisdiction == CCPA else GDPR
