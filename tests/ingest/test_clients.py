"""The unmodified Segment and RudderStack Python libraries against a live server.

Each library identifies, tracks, pages, aliases and flushes a few hundred events, with and
without gzip; then every stored event and profile is checked field by field, and a raw read of
every table finds no plaintext e-mail, phone, name or IP address.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from cdp.ingest.models import Event
from cdp.profiles.models import Customer, CustomerStatus, Identity, IdentityKind, Merge
from tests.ingest.conftest import ANALYTICS_OK

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("ledger_emptied")]

FLUSHED = 300


@pytest.fixture(autouse=True)
def sdk_connections_closed():
    """The SDKs keep one module-level HTTP session; close it after each test, so the live
    server's request thread ends and releases its database connection before teardown."""
    yield
    from rudderstack.analytics import request as rudder_request
    from segment.analytics import request as segment_request

    segment_request._session.close()
    rudder_request._session.close()


BASE_DIR = Path(__file__).resolve().parents[2]


def all_rows_as_text() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [name for (name,) in cursor.fetchall()]
        rows = []
        for table in tables:
            cursor.execute(f'SELECT row_to_json(t)::text FROM "{table}" t')
            rows.extend(text for (text,) in cursor.fetchall())
    return "\n".join(rows).lower()


def make_client(library: str, key: str, host: str, gzip: bool, errors: list[Any]) -> Any:
    def on_error(exc: Exception, batch: list[Any]) -> None:
        errors.append((type(exc).__name__, str(exc), len(batch)))

    if library == "segment":
        from segment.analytics import Client
    else:
        from rudderstack.analytics import Client
    return Client(key, host=host, gzip=gzip, on_error=on_error, max_retries=1, upload_interval=0.05)


@pytest.mark.parametrize(
    ("library", "gzip"),
    [("segment", False), ("segment", True), ("rudder", True), ("rudder", False)],
)
def test_real_client_library_stores_every_call_encrypted(live_server, source, library, gzip):
    errors: list[Any] = []
    client = make_client(library, source.write_key, live_server.url, gzip, errors)
    tag = uuid.uuid4().hex[:8]
    email, phone, ip = f"Jane.{tag}@Shop-Example.org", "+44 20 7946 0958", "203.0.113.77"
    first, last = f"Janelle{tag}", f"Doevansky{tag}"
    user, anon, old_anon = f"user-{tag}", f"anon-{tag}", f"older-{tag}"

    def context() -> dict[str, Any]:
        # A fresh dict per call: rudder's identify writes the traits into the one it is given.
        return {**ANALYTICS_OK, "ip": ip}

    when = dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.UTC)

    client.identify(
        user_id=user,
        anonymous_id=anon,
        traits={
            "email": email,
            "phone": phone,
            "firstName": first,
            "lastName": last,
            "plan": "gold",
            "favourite_colour": "teal",
        },
        context=context(),
        timestamp=when,
    )
    client.track(
        user_id=user,
        event="Order Completed",
        properties={
            "order_id": "o-1",
            "total": 59.9,
            "currency": "eur",
            "product_id": "p-9",
            "products": [{"product_id": "p-9", "quantity": 2, "name": "Teal Mug"}],
            "gift_message": f"for {first}",
        },
        context=context(),
        timestamp=when,
    )
    client.page(
        user_id=user,
        name="Home",
        properties={"path": "/", "url": f"/?e={email}"},
        context=context(),
        timestamp=when,
    )
    client.track(anonymous_id=old_anon, event="Signed Up", context=context(), timestamp=when)
    client.flush()  # both profiles stored: the alias below merges two stored profiles
    client.alias(previous_id=old_anon, user_id=user, context=context(), timestamp=when)
    for n in range(FLUSHED):
        client.track(
            user_id=user,
            event="Product Viewed",
            properties={"product_id": f"p-{n}", "price": n},
            context=context(),
        )
    client.flush()
    client.join()

    assert errors == []
    events = Event.objects.filter(source=source.source)
    assert events.count() == 5 + FLUSHED
    customer = Customer.objects.get(
        identities__kind=IdentityKind.USER_ID, identities__value_index=_index("user_id", user)
    )
    assert customer.status == CustomerStatus.ACTIVE
    assert customer.email == email.lower()
    assert customer.phone == "+442079460958"
    assert (customer.first_name, customer.last_name) == (first, last)
    assert customer.attributes == {"plan": "gold"}
    assert customer.traits == {"favourite_colour": "teal"}
    kinds = sorted(Identity.objects.filter(customer=customer).values_list("kind", flat=True))
    assert kinds == ["anonymous_id", "anonymous_id", "email", "phone", "user_id"]
    assert set(events.values_list("customer_id", flat=True)) <= {customer.id} | set(
        Merge.objects.filter(into_customer=customer).values_list("from_customer_id", flat=True)
    )
    merge = Merge.objects.get(into_customer=customer)
    assert merge.rule == "alias"
    assert Customer.objects.get(pk=merge.from_customer_id).status == CustomerStatus.MERGED

    order = events.get(type="track", name="Order Completed")
    assert order.amount == Decimal("59.9000")
    assert order.currency == "EUR"
    assert order.product_id == "p-9"
    assert order.properties == {
        "order_id": "o-1",
        "total": 59.9,
        "currency": "eur",
        "product_id": "p-9",
        "products": [{"product_id": "p-9", "quantity": 2}],
    }
    # Same clock on both sides: the correction only adds the time in flight.
    assert dt.timedelta(0) <= order.timestamp - when < dt.timedelta(seconds=5)
    assert order.original_timestamp == when
    assert order.sent_at is not None and order.received_at >= order.sent_at - dt.timedelta(1)
    assert order.clamped is False
    assert order.payload["properties"]["gift_message"] == f"for {first}"
    assert order.payload["context"]["ip"] == ip
    assert order.payload["messageId"] == order.message_id
    page = events.get(type="page")
    assert (page.name, page.properties) == ("Home", {"path": "/"})
    identify = events.get(type="identify")
    traits = identify.payload.get("traits") or identify.payload["context"]["traits"]
    assert traits["email"] == email
    if library == "rudder":
        assert identify.payload["channel"] == "server"
    viewed = events.filter(name="Product Viewed")
    assert viewed.count() == FLUSHED
    assert sorted(int(p) for p in viewed.values_list("amount", flat=True)) == list(range(FLUSHED))

    haystack = all_rows_as_text()
    for secret in (email, phone, "442079460958", first, last, ip, f"for {first}", user):
        assert secret.lower() not in haystack, secret


def _index(kind: str, value: str) -> bytes:
    from cdp.profiles.services import identifier_index

    return identifier_index(kind, value)[1]


SEGMENT_23 = "2.3.6"


def _segment_23_python() -> Path | None:
    """A throwaway venv under var/ with segment-analytics-python 2.3.6 (which sends the write
    key only in the body, no Authorization header); None when it cannot be built here."""
    venv = BASE_DIR / "var" / "test-venvs" / f"segment-{SEGMENT_23}"
    python = venv / "bin" / "python"
    done = venv / ".installed"
    venv.parent.mkdir(parents=True, exist_ok=True)
    # Parallel test workers build it once: the others wait on the lock, then find it done
    # (the python binary exists before pip has installed the package into it).
    with open(venv.parent / f"segment-{SEGMENT_23}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return python
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
            subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    f"segment-analytics-python=={SEGMENT_23}",
                ],
                check=True,
                timeout=300,
                capture_output=True,
            )
        except (subprocess.SubprocessError, OSError):
            return None
        done.touch()
    return python


SCRIPT = """
import sys, segment.analytics as a
errors = []
c = a.Client(sys.argv[1], host=sys.argv[2], gzip=sys.argv[3] == "1", max_retries=1,
             on_error=lambda e, b: errors.append(repr(e)))
ctx = {"consent": {"categoryPreferences": {"analytics": True}}}
c.identify(user_id="legacy-" + sys.argv[4], traits={"plan": "basic"}, context=ctx)
for n in range(120):
    c.track(user_id="legacy-" + sys.argv[4], event="Legacy Event", properties={"n": n},
            context=ctx)
c.flush(); c.join()
print("ERRORS", errors)
sys.exit(1 if errors else 0)
"""


@pytest.mark.skipif(os.environ.get("CDP_SKIP_LEGACY_SDK") == "1", reason="CDP_SKIP_LEGACY_SDK")
@pytest.mark.parametrize("gzip", [False, True])
def test_segment_23_sends_the_key_in_the_body_only_and_is_accepted(live_server, source, gzip):
    python = _segment_23_python()
    if python is None:
        pytest.skip(f"segment-analytics-python {SEGMENT_23} could not be installed here")
    tag = uuid.uuid4().hex[:8]
    run = subprocess.run(
        [str(python), "-c", SCRIPT, source.write_key, live_server.url, "1" if gzip else "0", tag],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert Event.objects.filter(source=source.source, name="Legacy Event").count() == 120
    assert Event.objects.filter(source=source.source, type="identify").count() == 1
