"""The touched-customers hook: how higher layers react to newly ingested data.

Ingest sits below segmentation and must not import it. A later package registers a function at
start-up (in its AppConfig.ready):

    register_touched_hook(segment_members_recheck)

and `cdp.ingest.tasks.customers_touched` (after each committed batch, in a worker) calls every
registered function with the list of customer ids (UUIDs). Hooks must be idempotent: the task may
run twice. A failing hook does not stop the others; the failure is raised after they ran.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence

logger = logging.getLogger(__name__)

TouchedHook = Callable[[Sequence[uuid.UUID]], object]

_hooks: list[TouchedHook] = []


def register_touched_hook(fn: TouchedHook) -> TouchedHook:
    """Register `fn` (once; registering it again is a no-op). Usable as a decorator."""
    if fn not in _hooks:
        _hooks.append(fn)
    return fn


def unregister_touched_hook(fn: TouchedHook) -> None:
    if fn in _hooks:
        _hooks.remove(fn)


def touched_hooks_run(customer_ids: Sequence[uuid.UUID]) -> int:
    """Call every hook with the ids; returns how many ran. Raises after all ran if any failed."""
    failed: list[str] = []
    for hook in list(_hooks):
        try:
            hook(customer_ids)
        except Exception:
            name = getattr(hook, "__qualname__", repr(hook))
            logger.exception("touched hook %s failed for %d customers", name, len(customer_ids))
            failed.append(name)
    if failed:
        raise RuntimeError(f"touched hooks failed: {', '.join(failed)}")
    return len(_hooks)
