"""A consent withdrawal, recorded through the consent service, removes the customer's features and
cluster assignments within one run of the withdrawal-hook task on a real worker."""

from __future__ import annotations

import time

import pytest

from consent.models import Channel
from consent.services import consent_record
from segmentation.models import ClusterAssignment, CustomerFeatures
from tests.segmentation.online_retail import DATA, clustered_run

pytestmark = pytest.mark.skipif(not DATA.exists(), reason="Online Retail data not present")


@pytest.fixture
def ledger_emptied_after(transactional_db):
    from consent.testing import consent_ledger_clear_for_tests

    yield
    consent_ledger_clear_for_tests()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_withdrawal_removes_features_and_assignments_on_the_worker(
    ledger_emptied_after, celery_worker_process
):
    from cdp.profiles.models import Customer

    run = clustered_run(modulo=60, k=2)
    leaving = Customer.objects.get(pk=run.assignments.values_list("customer_id", flat=True)[0])
    staying = run.assignments.exclude(customer=leaving).values_list("customer_id", flat=True)[0]

    started = time.monotonic()
    consent_record(
        customer=leaving,
        purpose_code="profiling",
        granted=False,
        channel=Channel.ADMIN,
        method="web-form",
        actor="test",
    )
    while CustomerFeatures.objects.filter(customer=leaving).exists():
        assert time.monotonic() - started < 30, "features still there after 30 s"
        time.sleep(0.1)

    assert not ClusterAssignment.objects.filter(customer=leaving).exists()
    assert CustomerFeatures.objects.filter(customer_id=staying).exists()
    assert ClusterAssignment.objects.filter(customer_id=staying).exists()
