"""Consent tasks: thin callers of services and hooks. Arguments are ids and purpose codes only."""

from __future__ import annotations

import uuid

from celery import shared_task

from consent.hooks import WithdrawalHookFailed, withdrawal_hooks_run
from consent.services import consent_expire_due

_RETRY = {
    "autoretry_for": (WithdrawalHookFailed,),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "max_retries": 8,
}


@shared_task(name="consent.tasks.run_withdrawal_hooks", **_RETRY)
def run_withdrawal_hooks(customer_id: str, purpose_code: str) -> int:
    """Call every registered withdrawal hook for one (customer, purpose); safe to run twice.

    Retried with backoff when a hook fails (hooks are idempotent, so the ones that succeeded
    run again harmlessly). Returns the number of hooks called.
    """
    return withdrawal_hooks_run(uuid.UUID(customer_id), purpose_code)


@shared_task(name="consent.tasks.run_withdrawal_hooks_batch", **_RETRY)
def run_withdrawal_hooks_batch(pairs: list[list[str]]) -> int:
    """The same for a batch of [customer id, purpose code] pairs (imports, expiry)."""
    failed: list[str] = []
    for customer_id, purpose_code in pairs:
        try:
            withdrawal_hooks_run(uuid.UUID(customer_id), purpose_code)
        except WithdrawalHookFailed as exc:
            failed.append(str(exc))
    if failed:
        raise WithdrawalHookFailed(f"{len(failed)} of {len(pairs)} pairs failed; {failed[0]}")
    return len(pairs)


@shared_task(name="consent.tasks.expire_consents")
def expire_consents() -> int:
    """Scheduled (see consent.schedules): record the expiry of every grant past its time."""
    return consent_expire_due()
