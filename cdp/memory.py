"""Memory management shared by the hot paths (a tracking batch, a data-subject export)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block.

    A tracking batch or an export allocates tens or hundreds of thousands of containers that
    live until the work is stored (parsed messages, claims, rows), none of them in a cycle; the
    collector, triggered every 700 allocations, traversed them again and again (gen0, then gen1,
    and the whole heap in gen2): about a fifth of a worker's CPU per event, and of an export.
    Reference counting frees the objects as usual; the collection deferred here runs at the
    first allocation after the block, once, over what survived (cycles included, so nothing
    accumulates). Only the caller that paused resumes: in a threaded server another request may
    run with collection on, which is merely slower.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
