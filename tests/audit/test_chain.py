"""The generic keyed hash chain (cdp.audit.chain), exercised without any model."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from dataclasses import dataclass, replace

import pytest
from django.db import connection, transaction

from cdp.audit.chain import (
    GENESIS,
    HASH_MISMATCH,
    LINK_BROKEN,
    SEQUENCE_GAP,
    ChainError,
    advisory_lock,
    canonical_bytes,
    link_hash,
    lock_id,
    verify_chain,
)

KEY = bytes(range(32))


@dataclass(frozen=True)
class Row:
    pk: int
    body: str
    prev_hash: bytes
    hash: bytes


def payload_of(row: Row) -> dict[str, object]:
    return {"seq": row.pk, "body": row.body}


def build_chain(bodies: list[str], key: bytes = KEY) -> list[Row]:
    rows: list[Row] = []
    prev = GENESIS
    for seq, body in enumerate(bodies, start=1):
        digest = link_hash(key, prev, {"seq": seq, "body": body})
        rows.append(Row(seq, body, prev, digest))
        prev = digest
    return rows


def test_canonical_bytes_sorts_keys_and_drops_whitespace() -> None:
    assert canonical_bytes({"b": 1, "a": [1, {"d": None, "c": "é"}]}) == (
        '{"a":[1,{"c":"é","d":null}],"b":1}'.encode()
    )


def test_canonical_bytes_writes_datetimes_as_utc_with_microseconds() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    when = dt.datetime(2026, 11, 23, 10, 22, 34, tzinfo=paris)

    assert canonical_bytes({"at": when}) == b'{"at":"2026-11-23T09:22:34.000000Z"}'


def test_canonical_bytes_writes_uuids_as_text_and_bytes_as_hex() -> None:
    value = uuid.UUID("550e8400-e29b-41d4-a716-446655440000")

    assert canonical_bytes({"id": value, "raw": b"\x00\xff"}) == (
        b'{"id":"550e8400-e29b-41d4-a716-446655440000","raw":"00ff"}'
    )


@pytest.mark.parametrize(
    "payload",
    [
        {"at": dt.datetime(2026, 11, 23, 9, 22, 34)},  # naive: ambiguous
        {"amount": float("nan")},
        {"amount": 1e20},  # would read back from jsonb as an integer
        {"price": object()},
    ],
)
def test_canonical_bytes_refuses_values_without_a_stable_form(payload: dict) -> None:
    with pytest.raises((TypeError, ValueError)):
        canonical_bytes(payload)


def test_link_hash_is_hmac_sha256_of_prev_hash_and_canonical_payload() -> None:
    prev = b"\x01" * 32
    payload = {"seq": 2, "body": "x"}

    expected = hmac.new(KEY, prev + b'{"body":"x","seq":2}', hashlib.sha256).digest()
    assert link_hash(KEY, prev, payload) == expected


def test_link_hash_refuses_a_prev_hash_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        link_hash(KEY, b"short", {})


def test_lock_id_is_stable_signed_64_bit_and_distinct_per_name() -> None:
    assert lock_id("cdp.audit.AuditEntry") == lock_id("cdp.audit.AuditEntry")
    assert lock_id("cdp.audit.AuditEntry") != lock_id("consent.ConsentEvent")
    assert -(2**63) <= lock_id("cdp.audit.AuditEntry") < 2**63


def test_verify_chain_accepts_an_intact_chain() -> None:
    report = verify_chain(build_chain(["a", "b", "c"]), KEY, payload_of)

    assert report.ok is True
    assert report.checked == 3
    assert report.first_broken is None
    assert report.head_seq == 3


def test_verify_chain_reports_an_edited_payload_as_hash_mismatch() -> None:
    rows = build_chain(["a", "b", "c"])
    rows[1] = replace(rows[1], body="B")

    report = verify_chain(rows, KEY, payload_of)

    assert (report.first_broken, report.reason, report.checked) == (2, HASH_MISMATCH, 1)


def test_verify_chain_reports_a_relinked_row_as_a_broken_link() -> None:
    rows = build_chain(["a", "b", "c"])
    rows[2] = replace(rows[2], prev_hash=b"\x07" * 32)

    report = verify_chain(rows, KEY, payload_of)

    assert (report.first_broken, report.reason) == (3, LINK_BROKEN)


def test_verify_chain_reports_a_missing_row_as_a_sequence_gap() -> None:
    rows = build_chain(["a", "b", "c", "d"])
    del rows[1]

    report = verify_chain(rows, KEY, payload_of)

    assert (report.first_broken, report.reason, report.detail) == (
        3,
        SEQUENCE_GAP,
        "expected 2, found 3",
    )


def test_verify_chain_reports_a_missing_first_row_as_a_broken_link() -> None:
    rows = build_chain(["a", "b"])[1:]

    report = verify_chain(rows, KEY, payload_of)

    assert (report.first_broken, report.reason) == (2, LINK_BROKEN)


def test_verify_chain_with_another_key_fails_at_the_first_row() -> None:
    report = verify_chain(build_chain(["a", "b"]), b"\x09" * 32, payload_of)

    assert (report.first_broken, report.reason) == (1, HASH_MISMATCH)


def test_verify_chain_reports_progress_and_consumes_rows_lazily() -> None:
    rows = build_chain([str(n) for n in range(5)])
    seen: list[int] = []

    def stream():
        yield from rows

    report = verify_chain(stream(), KEY, payload_of, progress=seen.append, progress_every=2)

    assert report.checked == 5
    assert seen == [2, 4]


def test_advisory_lock_outside_a_transaction_raises_a_clear_error() -> None:
    # The lock needs no table, but a connection; in autocommit it would not protect anything.
    with pytest.raises(ChainError, match=r"inside transaction\.atomic\(\)"):
        advisory_lock("tests.chain")


@pytest.mark.django_db
def test_advisory_lock_is_held_by_the_current_transaction() -> None:
    with transaction.atomic():
        advisory_lock("tests.chain")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND (classid::bigint << 32 | objid::bigint) = %s",
                [lock_id("tests.chain")],
            )
            assert cursor.fetchone()[0] == 1
