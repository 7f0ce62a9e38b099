"""Writes to consent: purposes, and every consent decision, through one append path.

Split by sub-domain: `purposes` (versioned wording), `recording` (the one append path, single
and batch), `signals` (GPC, objection, event categories, expiry, restriction). Import from here.
"""

from consent.services.purposes import notice_hash, purpose_create, purpose_update
from consent.services.recording import (
    CLOCK_SKEW,
    METHOD_CATEGORY_PREFERENCES,
    METHOD_EXPIRY,
    METHOD_GPC,
    METHOD_OBJECTION,
    METHOD_RE,
    ConsentDecision,
    consent_record,
    consent_record_many,
    consent_withdraw,
    withdrawal_hooks_enqueue,
)
from consent.services.signals import (
    CategoryReport,
    consent_apply_category_preferences,
    consent_apply_gpc,
    consent_customer_restricted,
    consent_expire_due,
    consent_object,
)

__all__ = [
    "CLOCK_SKEW",
    "METHOD_CATEGORY_PREFERENCES",
    "METHOD_EXPIRY",
    "METHOD_GPC",
    "METHOD_OBJECTION",
    "METHOD_RE",
    "CategoryReport",
    "ConsentDecision",
    "consent_apply_category_preferences",
    "consent_apply_gpc",
    "consent_customer_restricted",
    "consent_expire_due",
    "consent_object",
    "consent_record",
    "consent_record_many",
    "consent_withdraw",
    "notice_hash",
    "purpose_create",
    "purpose_update",
    "withdrawal_hooks_enqueue",
]
