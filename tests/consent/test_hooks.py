"""Withdrawal hooks: the registry, and the task run by a real worker after commit."""

import time
import uuid

import pytest

from consent.hooks import (
    WithdrawalHookFailed,
    register_withdrawal_hook,
    unregister_withdrawal_hook,
    withdrawal_hooks_run,
)
from consent.models import Channel
from consent.services import consent_record
from consent.tasks import run_withdrawal_hooks
from tests.consent import hook_probe


@pytest.fixture
def hook_calls(monkeypatch):
    """Only this test's hooks: the apps' own hooks (segments, ...) need a database."""
    from consent import hooks

    monkeypatch.setattr(hooks, "_hooks", [])
    calls = []

    def hook(customer_id, purpose_code):
        calls.append((customer_id, purpose_code))

    register_withdrawal_hook(hook)
    yield calls
    unregister_withdrawal_hook(hook)


def test_registered_hook_is_called_with_the_uuid_and_code(hook_calls):
    customer_id = uuid.uuid4()
    run_withdrawal_hooks(str(customer_id), "marketing")  # called in-process
    assert hook_calls == [(customer_id, "marketing")]


def test_registering_twice_calls_once(hook_calls):
    def other(customer_id, purpose_code):
        hook_calls.append("other")

    register_withdrawal_hook(other)
    register_withdrawal_hook(other)
    try:
        withdrawal_hooks_run(uuid.uuid4(), "x")
    finally:
        unregister_withdrawal_hook(other)
    assert hook_calls.count("other") == 1


def test_a_failing_hook_does_not_stop_the_others_and_is_raised(hook_calls):
    def broken(customer_id, purpose_code):
        raise RuntimeError("boom")

    register_withdrawal_hook(broken)
    try:
        with pytest.raises(WithdrawalHookFailed, match="broken"):
            withdrawal_hooks_run(uuid.uuid4(), "marketing")
    finally:
        unregister_withdrawal_hook(broken)
    assert len(hook_calls) == 1


def probe_lines():
    path = hook_probe.probe_file()
    return path.read_text().splitlines() if path and path.exists() else []


@pytest.mark.worker
def test_withdrawal_runs_the_hook_in_the_worker_after_commit(
    celery_worker_process, ledger_emptied_after, make_purpose, customer_in
):
    # Given a hook registered in this test and (through CDP_CONSENT_HOOK_MODULES) in the worker
    register_withdrawal_hook(hook_probe.record_call)
    make_purpose("t_hooked")
    customer = customer_in("gdpr")
    before = len(probe_lines())

    # When consent is withdrawn (committed: this test is transactional)
    consent_record(
        customer=customer,
        purpose_code="t_hooked",
        granted=False,
        channel=Channel.API,
        method="web-form",
        actor="system",
    )

    # Then the worker process calls the hook with the customer id and the purpose
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(probe_lines()) == before:
        time.sleep(0.1)
    new = probe_lines()[before:]
    assert len(new) == 1
    pid, customer_id, code = new[0].split()
    assert (customer_id, code) == (str(customer.id), "t_hooked")
    assert int(pid) == celery_worker_process.pid
    unregister_withdrawal_hook(hook_probe.record_call)
