"""The log filter keeps personal data out of log lines without mangling ordinary values."""

from __future__ import annotations

import base64
import io
import json
import logging
import time

import pytest

from cdp.logging import REDACTED, JsonFormatter, RedactPersonalData, redact


@pytest.mark.parametrize(
    "personal",
    [
        "+44 20 7946 0958",
        "(415) 555-0132",
        "+14155550132",
        "+1 (415) 555-0132",
        "415-555-0132",
        "415.555.0132",
        "020 7946 0958",
        "07946095800",
        "jane.doe+x@example.co.uk",
        "jane%40example.com",
        "192.168.1.20",
        "2001:db8::1",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "::ffff:192.168.1.20",
        "fe80::1",
    ],
)
def test_redact_replaces_personal_data_in_a_sentence(personal: str) -> None:
    # Given a sentence quoting an e-mail address, phone number or IP address
    text = f"contact {personal} failed"

    # When it is redacted
    result = redact(text)

    # Then exactly that value is replaced
    assert result == f"contact {REDACTED} failed"


@pytest.mark.parametrize(
    "ordinary",
    [
        "2026-11-23 09:22:34",
        "2026-11-23T09:22:34.123456+00:00",
        "2026-11-23T09:22:34.123456Z",
        "23/11/2026",
        "550e8400-e29b-41d4-a716-446655440000",
        "source:550e8400-e29b-41d4-a716-446655440000",
        "user:42",
        "1000000 rows",
        "1,000,000 rows",
        "1 000 000 rows",
        "took 0:00:01.234567",
        "took 1532 ms",
        "epoch 1732353754.123456",
        "seq 4155550132",
        "amount 123456.789",
        "version 4.14.0",
        "std::vector",
        "sha256:abcdef0123456789",
        "f(1234567)",
        "HTTP 503 after 3 retries",
    ],
)
def test_redact_leaves_ordinary_values_alone(ordinary: str) -> None:
    assert redact(ordinary) == ordinary


def test_redact_keeps_a_timestamp_next_to_a_phone_number() -> None:
    assert redact("at 2026-11-23 020 7946 0958") == f"at 2026-11-23 {REDACTED}"
    assert redact("020 7946 0958 2026-11-23") == f"{REDACTED} 2026-11-23"


def test_redact_keeps_ports_and_punctuation_around_addresses() -> None:
    assert redact("[2001:db8::1]:8080 and 10.0.0.1:5432.") == (
        f"[{REDACTED}]:8080 and {REDACTED}:5432."
    )


@pytest.fixture
def captured() -> tuple[logging.Logger, io.StringIO, logging.Handler]:
    """A logger whose only handler is a console-like one with the redaction filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactPersonalData())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.logging.captured")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, stream, handler
    logger.handlers = []


def test_filter_redacts_message_arguments(captured) -> None:
    logger, stream, _ = captured

    logger.info("sent to %s from %s at %s", "jane@example.com", "192.168.1.20", "2026-11-23")

    assert stream.getvalue() == f"INFO sent to {REDACTED} from {REDACTED} at 2026-11-23\n"


def test_filter_redacts_exception_text_logged_with_logger_exception(captured) -> None:
    logger, stream, _ = captured

    try:
        raise ValueError("duplicate key value (email)=(jane.doe@example.com)")
    except ValueError:
        logger.exception("import of row %d failed", 7)

    output = stream.getvalue()
    assert output.startswith("ERROR import of row 7 failed\nTraceback (most recent call last):")
    assert f"ValueError: duplicate key value (email)=({REDACTED})" in output
    assert "jane.doe@example.com" not in output
    assert "example.com" not in output


def test_filter_redacts_extra_fields(captured) -> None:
    logger, _, handler = captured
    records: list[logging.LogRecord] = []
    handler.emit = records.append  # type: ignore[method-assign]

    logger.warning("lookup", extra={"ip": "10.1.2.3", "rows": 5, "tags": ["+14155550132", "x"]})

    assert records[0].ip == REDACTED
    assert records[0].rows == 5
    assert records[0].tags == [REDACTED, "x"]


def test_json_formatted_line_carries_no_personal_data() -> None:
    # Given a handler configured as in settings: JSON formatter and the redaction filter
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactPersonalData())
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("tests.logging.json")
    logger.handlers = [handler]
    logger.propagate = False

    # When an exception quoting an e-mail address is logged with an extra field
    try:
        raise RuntimeError("no customer for jane@example.com")
    except RuntimeError:
        logger.exception("lookup from %s failed", "2001:db8::1", extra={"phone": "(415) 555-0132"})
    logger.handlers = []

    # Then the line is one JSON object with every personal value redacted
    line = stream.getvalue()
    assert line.count("\n") == 1
    record = json.loads(line)
    assert record["levelname"] == "ERROR"
    assert record["name"] == "tests.logging.json"
    assert record["message"] == f"lookup from {REDACTED} failed"
    assert record["phone"] == REDACTED
    assert record["exc_info"].endswith(f"RuntimeError: no customer for {REDACTED}")
    for secret in ("jane@example.com", "2001:db8::1", "555-0132"):
        assert secret not in line


def test_filter_replaces_the_line_when_redaction_fails(captured) -> None:
    logger, stream, _ = captured

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    logger.info(Unprintable())

    assert stream.getvalue() == "INFO [log message dropped: redaction failed]\n"


def test_settings_attach_the_filter_to_the_console_handler() -> None:
    from django.conf import settings

    console = settings.LOGGING["handlers"]["console"]
    assert console["filters"] == ["redact_personal_data"]
    assert settings.LOGGING["filters"]["redact_personal_data"] == {
        "()": "cdp.logging.RedactPersonalData"
    }


def test_redact_stays_linear_on_a_long_token_without_personal_data() -> None:
    # A quadratic pattern took minutes on a 200 kB base64 blob; a log call must not stall.
    blob = base64.b64encode(bytes(range(256)) * 600).decode()

    started = time.perf_counter()
    result = redact(f"payload {blob} end")

    assert result == f"payload {blob} end"
    assert time.perf_counter() - started < 2.0
