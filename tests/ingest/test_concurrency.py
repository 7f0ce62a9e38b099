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


def test_a_row_another_writer_commits_during_the_copy_is_counted_as_a_duplicate(client, source):
    """Events are stored by COPY, which has no ON CONFLICT: a writer that takes no message lock
    (an import into the same source) and commits one of the batch's message ids while the COPY
    waits on it aborts the batch, which runs again (checked for stored ids, or with the INSERT
    that skips conflicts), so the client still gets 200 with the row counted as a duplicate."""
    import psycopg
    from django.db import connection

    first = client.post(
        "/v1/batch",
        data=json.dumps({"batch": [message(userId="copy-racer")]}),
        content_type="application/json",
        headers={"Authorization": basic(source.write_key)},
    )
    assert first.status_code == 200 and first.json()["accepted"] == 1
    stored = Event.objects.get(source=source.source)
    raced = message(userId="copy-racer")
    settings = connection.settings_dict
    other = psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        password=settings["PASSWORD"] or None,
    )
    # The other writer's row, not committed yet: the batch's duplicate check cannot see it.
    other.execute(
        "INSERT INTO ingest_event (id, source_id, message_id, customer_id, type, name, "
        '"timestamp", received_at, clamped, currency, product_id, properties, payload) '
        "VALUES (%s, %s, %s, %s, 'track', 'x', now(), now(), false, '', '', '{}', '\\x00')",
        [uuid.uuid4(), source.source.id, raced["messageId"], stored.customer_id],
    )
    results: list = []

    def send() -> None:
        try:
            response = client.post(
                "/v1/batch",
                data=json.dumps({"batch": [raced, message(userId="copy-racer")]}),
                content_type="application/json",
                headers={"Authorization": basic(source.write_key)},
            )
            results.append((response.status_code, response.json()))
        finally:
            connection.close()

    thread = threading.Thread(target=send)
    thread.start()
    waiting = False
    with psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        password=settings["PASSWORD"] or None,
        autocommit=True,
    ) as watcher:
        for _ in range(500):
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE 'COPY ingest_event%%'"
            ).fetchone()
            if row and row[0]:
                waiting = True
                break
            thread.join(0.02)
    other.commit()
    other.close()
    thread.join(60)

    assert waiting, "the batch's COPY never waited on the other writer's row"
    assert results == [
        (200, {**results[0][1], "accepted": 1, "duplicate": 1, "rejected": 0, "suppressed": 0})
    ]
    assert Event.objects.filter(source=source.source).count() == 3
