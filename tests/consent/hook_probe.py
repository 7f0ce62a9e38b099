"""A withdrawal hook that leaves a trace in a file, so a test can see it ran in the worker.

Imported at start-up by any process that has CDP_CONSENT_HOOK_MODULES naming this module (the
consent conftest sets it before the session's worker starts) and the probe directory set.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from consent.hooks import register_withdrawal_hook

PROBE_DIR_ENV = "CONSENT_HOOK_PROBE_DIR"


def probe_file() -> Path | None:
    directory = os.environ.get(PROBE_DIR_ENV)
    return Path(directory) / "calls.txt" if directory else None


@register_withdrawal_hook
def record_call(customer_id: uuid.UUID, purpose_code: str) -> None:
    path = probe_file()
    if path is not None:
        with path.open("a") as handle:
            handle.write(f"{os.getpid()} {customer_id} {purpose_code}\n")
