"""After commit, the touched customer ids reach a real Celery worker through the broker."""

from __future__ import annotations

import json
import urllib.request

import pytest

from cdp.ingest import tasks
from tests.ingest.conftest import basic, message

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("ledger_emptied"),
]


def test_touched_customers_are_handed_to_the_worker_after_commit(
    celery_worker_process, live_server, source, monkeypatch
):
    results = []
    original = tasks.customers_touched.apply_async

    def spy(args, **options):
        result = original(args, **options)
        results.append((args[0], result))
        return result

    monkeypatch.setattr(tasks.customers_touched, "apply_async", spy)
    body = {"batch": [message(userId="w1"), message(userId="w2"), message(userId="w1")]}
    request = urllib.request.Request(
        f"{live_server.url}/v1/batch",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": basic(source.write_key)},
    )

    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        assert json.loads(response.read())["accepted"] == 3

    assert len(results) == 1
    ids, result = results[0]
    assert len(ids) == 2
    assert result.get(timeout=60) == 2  # the worker saw both committed customers
