"""On a real worker: a queued model run trains and scores; a withdrawal removes the scores."""

from __future__ import annotations

import time

import pytest

from consent.models import Channel
from consent.services import consent_record
from segmentation.personalization.models import CustomerScore, ModelRun, RunStatus
from segmentation.personalization.services import model_run_create
from tests.segmentation.personalization.conftest import AS_OF


@pytest.fixture
def ledger_emptied_after(transactional_db):
    from consent.testing import consent_ledger_clear_for_tests

    yield
    consent_ledger_clear_for_tests()


def wait_for(check, *, seconds: float = 60, what: str = "condition") -> None:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"{what} not met after {seconds} s"
        time.sleep(0.2)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker_trains_scores_and_a_withdrawal_removes_scores(
    ledger_emptied_after, celery_worker_process, shop
):
    run = model_run_create(kind="propensity", actor="t", params={"as_of": AS_OF.isoformat()})

    wait_for(
        lambda: ModelRun.objects.get(pk=run.pk).status in (RunStatus.SUCCEEDED, RunStatus.FAILED),
        what="model run finished",
    )
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert CustomerScore.objects.filter(model_run=run).count() == 24

    leaving = shop["consented"][0]
    consent_record(
        customer=leaving,
        purpose_code="profiling",
        granted=False,
        channel=Channel.ADMIN,
        method="web-form",
        actor="test",
    )
    wait_for(
        lambda: not CustomerScore.objects.filter(customer=leaving).exists(),
        seconds=30,
        what="scores removed",
    )
    assert CustomerScore.objects.filter(model_run=run).count() == 23
