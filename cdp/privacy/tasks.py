"""Privacy tasks: thin callers of services; arguments are ids only, and both are safe to rerun."""

from __future__ import annotations

import uuid

from celery import shared_task


@shared_task(name="cdp.privacy.tasks.dsr_execute")
def dsr_execute(request_id: str) -> str | None:
    """Carry out one verified data-subject request (a finished one is left alone)."""
    from cdp.privacy.services import dsr_execute as execute

    request = execute(request_id=uuid.UUID(request_id))
    return None if request is None else request.status


@shared_task(name="cdp.privacy.tasks.regulation_execute")
def regulation_execute(regulation_id: str) -> str | None:
    """Carry out one regulation (suppressions and the erasure of each subject)."""
    from cdp.privacy.regulations import regulation_execute as execute

    regulation = execute(regulation_id=uuid.UUID(regulation_id))
    return None if regulation is None else regulation.status


@shared_task(name="cdp.privacy.tasks.residue_sweep")
def residue_sweep() -> str | None:
    """Scheduled (see cdp.privacy.schedules): the deferred residue sweep of recent erasures."""
    from cdp.privacy.sweep import residue_sweep_run

    sweep = residue_sweep_run()
    return None if sweep is None else str(sweep.id)
