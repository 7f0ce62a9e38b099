"""Bad input: each answered with a clear reason (code and message), nothing stored for it."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import pytest

from cdp.ingest.models import Event, Source
from tests.ingest.conftest import basic, message

pytestmark = pytest.mark.django_db

NOW = dt.datetime.now(dt.UTC)


def batch(*messages, **extra):
    return {"batch": list(messages), "sentAt": NOW.isoformat(), **extra}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "empty_body"),
        (b'{"batch": [], "sentAt": null}', 400, "empty_batch"),
        (b'{"batch": {"type": "track"}}', 400, "invalid_batch"),
        (b"[1, 2]", 400, "invalid_body"),
        (b'{"batch": [{"type": "track", "x": NaN}]}', 400, "invalid_json"),
        (b'{"batch": [{"type": "track", "x": 1e400}]}', 400, "invalid_json"),
        (b'{"batch": [{"type": "track", "userId": "\xff\xfe"}]}', 400, "invalid_utf8"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "too_deep"),
    ],
)
def test_malformed_request_is_refused_with_a_code_and_nothing_stored(post, body, status, code):
    response = post("batch", body)

    assert response.status_code == status
    assert response.json()["code"] == code
    assert response.json()["message"]
    assert Event.objects.count() == 0


def test_bad_gzip_is_refused(post, source):
    response = post("batch", b"\x1f\x8b\x08\x00garbage", headers={"Content-Encoding": "gzip"})

    assert (response.status_code, response.json()["code"]) == (400, "bad_gzip")


def test_gzip_bomb_is_refused_without_inflating_it(post):
    bomb = gzip.compress(b'{"batch": [' + b" " * (64 * 1024 * 1024) + b"]}", 9)
    assert len(bomb) < 100_000

    response = post("batch", bomb, headers={"Content-Encoding": "gzip"})

    assert (response.status_code, response.json()["code"]) == (413, "request_too_large")
    assert Event.objects.count() == 0


def test_batch_over_the_source_limit_is_refused(post, source):
    Source.objects.filter(pk=source.source.pk).update(max_request_bytes=2_000)
    response = post("batch", batch(*[message() for _ in range(20)]))

    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"
    assert Event.objects.count() == 0


def test_default_limits_accept_an_eight_megabyte_batch(post, source):
    # rudder's largest: 4 MB of messages plus the one that crossed the line.
    filler = "x" * 3_000
    messages = [message(properties={"category": filler}) for _ in range(2_600)]
    body = json.dumps(batch(*messages)).encode()
    assert 8_000_000 < len(body) < 9_000_000

    response = post("batch", body, gzipped=True)

    assert response.status_code == 200
    assert response.json()["accepted"] == 2_600


BAD_MESSAGES = [
    ({"type": "bogus"}, "unknown_type"),
    ({"userId": None, "anonymousId": None, "noids": True}, "missing_identity"),
    ({"messageId": None}, "missing_message_id"),
    ({"messageId": 42}, "missing_message_id"),
    ({"userId": {"id": 1}}, "invalid_field"),
    ({"userId": True}, "invalid_field"),
    ({"properties": ["a"]}, "invalid_field"),
    ({"context": "web"}, "invalid_field"),
    ({"event": None}, "missing_event"),
    ({"timestamp": "yesterday"}, "invalid_field"),
    ({"timestamp": 1700000000}, "invalid_field"),
    ({"timestamp": "1999-01-01T00:00:00Z"}, "timestamp_too_old"),
    ({"properties": {"a": "\ud800"}}, "invalid_utf8"),
    ({"properties": {"a": "nul\u0000"}}, "invalid_character"),
    ({"properties": {"deep": json.loads("[" * 40 + "]" * 40)}}, "too_deep"),
    ({"userId": "null", "anonymousId": "undefined"}, "blocked_identifier"),
]


@pytest.mark.parametrize(("fields", "code"), BAD_MESSAGES)
def test_bad_message_in_a_batch_is_rejected_alone_with_its_index(post, fields, code):
    good = message(event="Good")
    bad = message(**fields)

    response = post("batch", batch(good, bad))

    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"], body["received"]) == (1, 1, 2)
    assert body["errors"][0]["index"] == 1
    assert body["errors"][0]["code"] == code
    assert body["errors"][0]["reason"]
    assert list(Event.objects.values_list("message_id", flat=True)) == [good["messageId"]]


@pytest.mark.parametrize(("fields", "code"), BAD_MESSAGES[:3])
def test_batch_with_nothing_acceptable_is_a_400_listing_each_reason(post, fields, code):
    response = post("batch", batch(message(**fields)))

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert response.json()["errors"][0]["index"] == 0


def test_oversize_message_is_rejected_alone(post, source):
    Source.objects.filter(pk=source.source.pk).update(max_message_bytes=2_000)
    good, big = message(), message(properties={"category": "y" * 5_000})

    response = post("batch", batch(good, big))

    assert response.status_code == 200
    assert response.json()["errors"] == [
        {"index": 1, "code": "message_too_large", "reason": response.json()["errors"][0]["reason"]}
    ]
    assert "2000" in response.json()["errors"][0]["reason"]
    assert Event.objects.count() == 1


def test_huge_properties_within_default_limits_are_stored_encrypted(post):
    properties = {f"key{i}": "v" * 100 for i in range(5_000)}

    response = post("batch", batch(message(properties=properties)))

    assert response.json()["accepted"] == 1
    event = Event.objects.get()
    assert event.properties == {}
    assert len(event.payload["properties"]) == 5_000


def test_far_future_timestamp_is_clamped_to_receive_time_and_flagged(post):
    future = (NOW + dt.timedelta(days=30)).isoformat()
    msg = message(timestamp=future)

    response = post("batch", {"batch": [msg]})  # no sentAt: nothing to correct with

    assert response.status_code == 200
    assert response.json()["clamped"] == [0]
    event = Event.objects.get()
    assert event.clamped is True
    assert event.timestamp == event.received_at
    assert event.original_timestamp.isoformat() == future


def test_client_clock_skew_is_corrected_from_sent_at(post):
    # The client's clock runs 2 hours behind: it stamped the event 10 s before sending.
    client_now = NOW - dt.timedelta(hours=2)
    msg = message(timestamp=(client_now - dt.timedelta(seconds=10)).isoformat())

    post("batch", {"batch": [msg], "sentAt": client_now.isoformat()})

    event = Event.objects.get()
    assert event.received_at - event.timestamp == dt.timedelta(seconds=10)
    assert event.sent_at == client_now
    assert event.clamped is False


def test_single_endpoint_takes_its_type_from_the_path(post):
    msg = message("track")
    del msg["type"]

    response = post("track", msg)

    assert response.status_code == 200
    assert Event.objects.get().type == "track"


def test_single_endpoint_refuses_another_type(post):
    response = post("identify", message("track"))

    assert (response.status_code, response.json()["code"]) == (400, "type_mismatch")


def test_error_bodies_are_json_objects_with_code_and_message(client):
    response = client.post("/v1/batch", data=b"{}", content_type="application/json")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {"code", "message"}


def test_success_is_exactly_200(post):
    response = post("batch", batch(message()))

    assert response.status_code == 200
    assert response.json()["success"] is True


def test_unknown_content_encoding_is_refused(post):
    response = post("batch", b"{}", headers={"Content-Encoding": "br"})

    assert (response.status_code, response.json()["code"]) == (415, "unsupported_encoding")


def test_basic_header_must_decode(client):
    response = client.post(
        "/v1/batch",
        data=b"{}",
        content_type="application/json",
        headers={"Authorization": "Basic %%%"},
    )

    assert (response.status_code, response.json()["code"]) == (401, "invalid_credentials")


def test_key_in_body_also_works_on_single_endpoints_and_is_not_stored(post, source):
    msg = message("track", writeKey=source.write_key)

    response = post("track", msg, auth=False)

    assert response.status_code == 200
    assert "writeKey" not in Event.objects.get().payload
    assert basic(source.write_key)  # helper stays importable for other modules


def test_batch_with_more_messages_than_the_source_accepts_is_refused(post, source):
    Source.objects.filter(pk=source.source.pk).update(max_batch_messages=3)

    response = post("batch", batch(*[message() for _ in range(4)]))

    assert (response.status_code, response.json()["code"]) == (413, "batch_too_large")
    assert Event.objects.count() == 0
