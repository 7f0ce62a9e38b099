"""Consent receipts shaped like the Kantara Initiative Consent Receipt (v1.1), per decision.

The receipt identifies the subject by the pseudonymous customer id, never by contact data, so it
is safe to return over the API and to keep. Fields beyond the Kantara core (`state`, `notice`,
`ledger`) carry what ISO/IEC TS 27560 asks for: the notice version and its hash, the state, and
the ledger entry that proves it.
"""

from __future__ import annotations

from typing import Any

from consent.conf import controller_name
from consent.models import ConsentEvent, Purpose

RECEIPT_VERSION = "KI-CR-v1.1.0"
JURISDICTIONS = {"gdpr": "EU GDPR", "ccpa": "US-CA CCPA/CPRA", "other": "Other"}


def consent_receipt(event: ConsentEvent, purpose: Purpose | None = None) -> dict[str, Any]:
    """The receipt for one ledger entry; `purpose` (for title and coverage) is optional."""
    termination = (
        f"expires {event.expires_at.isoformat()}"
        if event.granted and event.expires_at
        else "until withdrawn"
        if event.granted
        else "withdrawn"
    )
    return {
        "version": RECEIPT_VERSION,
        "jurisdiction": JURISDICTIONS.get(event.jurisdiction, event.jurisdiction),
        "consentTimestamp": int(event.at.timestamp()),
        "collectionMethod": f"{event.channel}:{event.method}",
        "consentReceiptID": str(event.receipt_id),
        "language": "en",
        "piiPrincipalId": str(event.customer_id),
        "piiControllers": [{"piiController": controller_name()}],
        "services": [
            {
                "service": "customer data platform",
                "purposes": [
                    {
                        "purpose": purpose.title if purpose else event.purpose_code,
                        "purposeCode": event.purpose_code,
                        "purposeCategory": list(purpose.covers) if purpose else [],
                        "consentType": "EXPLICIT" if event.channel != "gpc" else "SIGNAL",
                        "legalBasis": purpose.legal_basis if purpose else None,
                        "termination": termination,
                        "thirdPartyDisclosure": bool(purpose and "sale_sharing" in purpose.covers),
                        "primaryPurpose": True,
                    }
                ],
            }
        ],
        "sensitive": False,
        "spiCat": [],
        "state": "granted" if event.granted else "withdrawn",
        "notice": {"version": event.purpose_version, "textSha256": event.notice_hash},
        "ledger": {"seq": event.seq, "hash": bytes(event.hash).hex()},
    }
