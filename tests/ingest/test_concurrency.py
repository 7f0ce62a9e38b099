"""The same batch posted by several clients at once stores each message exactly once."""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid

import pytest

from cdp.ingest.models import Event
from cdp.profiles.models import Identity
from tests.ingest.conftest import basic, message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("ledger_emptied")]

CLIENTS = 6


def test_same_batch_from_several_clients_at_once_is_stored_once(live_server, source):
    users = [f"racer-{uuid.uuid4().hex[:6]}" for _ in range(20)]
    batch = {
        "batch": [message("identify", userId=u, traits={"plan": "x"}) for u in users]
        + [message(userId=users[n % 20]) for n in range(180)]
    }
    data = json.dumps(batch).encode()
    results: list[dict] = []
    barrier = threading.Barrier(CLIENTS)

    def send() -> None:
        request = urllib.request.Request(
            f"{live_server.url}/v1/batch",
            data=data,
            headers={"Content-Type": "application/json", "Authorization": basic(source.write_key)},
        )
        barrier.wait()
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
            results.append(json.loads(response.read()))

    threads = [threading.Thread(target=send) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == CLIENTS
    assert sum(r["accepted"] for r in results) == 200
    assert sum(r["duplicate"] for r in results) == 200 * (CLIENTS - 1)
    assert Event.objects.filter(source=source.source).count() == 200
    assert Identity.objects.filter(kind="user_id").count() == 20
    assert Event.objects.values("customer").distinct().count() == 20
