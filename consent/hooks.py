"""The withdrawal hook: how higher layers learn that a purpose no longer covers a customer.

Consent sits below segmentation and must not import it. Instead, a later package registers a
function at start-up (in its AppConfig.ready):

    register_withdrawal_hook(segment_memberships_purge)

and `consent.tasks.run_withdrawal_hooks` calls every registered function with
`(customer_id: UUID, purpose_code: str)` after the withdrawal commits. Hooks must be idempotent:
the task may run twice, and it runs for withdrawals, objections, expiries and restrictions alike.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

logger = logging.getLogger(__name__)

WithdrawalHook = Callable[[uuid.UUID, str], None]

_hooks: list[WithdrawalHook] = []


def register_withdrawal_hook(fn: WithdrawalHook) -> WithdrawalHook:
    """Register `fn` (once; registering it again is a no-op). Usable as a decorator."""
    if fn not in _hooks:
        _hooks.append(fn)
    return fn


def unregister_withdrawal_hook(fn: WithdrawalHook) -> None:
    if fn in _hooks:
        _hooks.remove(fn)


def withdrawal_hooks() -> list[WithdrawalHook]:
    return list(_hooks)


class WithdrawalHookFailed(RuntimeError):
    """One or more hooks raised; the others still ran. Names the hooks, no personal data."""


def withdrawal_hooks_run(customer_id: uuid.UUID, purpose_code: str) -> int:
    """Call every hook; a failing hook does not stop the rest, and the failure is raised after.

    Returns the number of hooks called.
    """
    failed: list[str] = []
    for hook in list(_hooks):
        try:
            hook(customer_id, purpose_code)
        except Exception:
            name = getattr(hook, "__qualname__", repr(hook))
            logger.exception("withdrawal hook %s failed for purpose %s", name, purpose_code)
            failed.append(name)
    if failed:
        raise WithdrawalHookFailed(f"withdrawal hooks failed: {', '.join(failed)}")
    return len(_hooks)
