"""Write keys: three ways to present them, 401 for a wrong key, 403 for a revoked or disabled
source, rotation with a grace period, the key shown once; rate limit with Retry-After."""

from __future__ import annotations

import datetime as dt
import io
import uuid

import pytest
from django.core.management import call_command

from cdp.ingest.models import Event, Source
from cdp.ingest.services import source_revoke, source_rotate_key
from tests.ingest.conftest import basic, message

pytestmark = pytest.mark.django_db


def body(source_key=None):
    data = {"batch": [message()]}
    if source_key:
        data["writeKey"] = source_key
    return data


def test_http_basic_with_empty_password_is_accepted(post, source):
    assert (
        post("batch", body(), headers={"Authorization": basic(source.write_key)}).status_code == 200
    )


def test_write_key_in_body_without_authorization_header_is_accepted(post, source):
    assert post("batch", body(source.write_key), auth=False).status_code == 200


def test_bearer_with_write_key_in_body_is_accepted(post, source):
    response = post("batch", body(source.write_key), headers={"Authorization": "Bearer oauth-x"})

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("headers", "in_body", "code"),
    [
        ({"Authorization": basic("wk_wrong")}, None, "invalid_write_key"),
        ({}, "wk_wrong", "invalid_write_key"),
        ({}, None, "missing_write_key"),
        ({"Authorization": "Token abc"}, None, "invalid_credentials"),
    ],
)
def test_wrong_or_missing_key_is_401_and_stores_nothing(post, headers, in_body, code):
    response = post("batch", body(in_body), headers=headers, auth=bool(headers))

    assert (response.status_code, response.json()["code"]) == (401, code)
    assert Event.objects.count() == 0


def test_revoked_source_is_403(post, source):
    source_revoke(source=source.source, actor="system")

    response = post("batch", body())

    assert (response.status_code, response.json()["code"]) == (403, "source_revoked")


def test_disabled_source_is_403(post, source):
    Source.objects.filter(pk=source.source.pk).update(enabled=False)

    response = post("batch", body())

    assert (response.status_code, response.json()["code"]) == (403, "source_disabled")


def test_rotation_keeps_the_old_key_valid_for_the_grace_period_only(post, source):
    issued = source_rotate_key(source=source.source, actor="system", grace=dt.timedelta(hours=1))

    assert post("batch", body(), key=issued.write_key).status_code == 200
    assert post("batch", body(), key=source.write_key).status_code == 200
    Source.objects.filter(pk=source.source.pk).update(
        previous_key_valid_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    )
    assert post("batch", body(), key=source.write_key).status_code == 401


def test_write_key_is_stored_only_as_a_hash(source):
    stored = Source.objects.filter(pk=source.source.pk).values().get()

    assert source.write_key not in str(stored)
    assert stored["key_prefix"] == source.write_key[:11]


def test_create_source_command_prints_the_key_once_and_it_works(post):
    out = io.StringIO()
    call_command("create_source", "crm-partner", stdout=out)
    key = next(line for line in out.getvalue().splitlines() if line.startswith("write key:"))
    key = key.split(": ", 1)[1]

    assert post("batch", body(), key=key).status_code == 200
    out = io.StringIO()
    call_command("rotate_write_key", "crm-partner", "--grace-hours", "0", stdout=out)
    assert post("batch", body(), key=key).status_code == 401
    call_command("revoke_source", "crm-partner", stdout=io.StringIO())
    new_key = out.getvalue().splitlines()[0].split(": ", 1)[1]
    assert post("batch", body(), key=new_key).status_code == 403


def test_rate_limit_answers_429_with_retry_after_and_stores_nothing(post, source):
    Source.objects.filter(pk=source.source.pk).update(rate_limit_per_minute=3)

    first = post("batch", {"batch": [message(), message()]})
    second = post("batch", {"batch": [message(), message()]})

    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json()["code"] == "rate_limited"
    assert 1 <= int(second["Retry-After"]) <= 60
    assert Event.objects.count() == 2


def test_the_database_refuses_to_delete_a_source_with_events(post, source):
    """Event.source has no per-row foreign-key check (the batch locks its source once); the
    delete half is a trigger, so even raw SQL cannot orphan a source's events."""
    from django.db import IntegrityError, connection, transaction

    assert post("batch", body()).json()["accepted"] == 1
    with pytest.raises(IntegrityError, match="still has events"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM ingest_source WHERE id = %s", [source.source.id])
    unused = Source.objects.create(name="unused", key_hash=b"\0" * 32)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM ingest_source WHERE id = %s", [unused.id])
    assert not Source.objects.filter(pk=unused.pk).exists()


def test_a_source_deleted_after_authentication_is_an_unknown_key(source):
    from cdp.ingest.messages import RequestError
    from cdp.ingest.pipeline import source_lock_for_events

    source_lock_for_events(source.source.id)  # exists: locked, no error
    with pytest.raises(RequestError) as raised:
        source_lock_for_events(uuid.uuid4())
    assert raised.value.status == 401


@pytest.mark.django_db(transaction=True)
def test_a_source_delete_racing_a_batch_waits_for_it_and_then_fails(source):
    """The batch holds its source FOR KEY SHARE until it commits: a DELETE started meanwhile
    waits, and its trigger then sees the batch's events (without the lock it would see none
    and orphan them)."""
    import threading

    import psycopg
    from django.db import connection, transaction

    from cdp.ingest.pipeline import source_lock_for_events
    from cdp.profiles.models import Customer

    customer = Customer.objects.create()
    settings = connection.settings_dict
    params = {
        "dbname": settings["NAME"],
        "user": settings["USER"],
        "host": settings["HOST"],
        "port": settings["PORT"] or 5432,
        "password": settings["PASSWORD"] or None,
    }
    outcome: list[BaseException | None] = []

    def delete() -> None:
        with psycopg.connect(**params, autocommit=True) as other:
            try:
                other.execute("DELETE FROM ingest_source WHERE id = %s", [source.source.id])
                outcome.append(None)
            except psycopg.Error as exc:
                outcome.append(exc)

    with transaction.atomic():
        source_lock_for_events(source.source.id)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO ingest_event (id, source_id, message_id, customer_id, type, name, "
                '"timestamp", received_at, clamped, currency, product_id, properties, payload) '
                "VALUES (%s, %s, 'm-1', %s, 'track', 'x', now(), now(), false, '', '', '{}', "
                "'\\x00')",
                [uuid.uuid4(), source.source.id, customer.id],
            )
        thread = threading.Thread(target=delete)
        thread.start()
        with psycopg.connect(**params, autocommit=True) as watcher:
            for _ in range(500):
                row = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'DELETE FROM ingest_source%%'"
                ).fetchone()
                if row[0]:
                    break
                thread.join(0.02)
            else:
                pytest.fail("the DELETE never waited on the batch's lock")
    thread.join(30)

    assert isinstance(outcome[0], psycopg.errors.ForeignKeyViolation)
    assert Source.objects.filter(pk=source.source.pk).exists()
    Event.objects.filter(source=source.source).delete()
