"""What the import's fast paths write: values sealed by the bulk COPY decrypt through the model
fields, row fingerprints stay byte-for-byte what earlier versions stored, identifiers repeated
in a file are normalised once, and per-chunk quality counting equals per-cell counting."""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest

from cdp.crypto.blind_index import blind_index
from cdp.ingest.imports import quality, rows
from cdp.ingest.imports.reader import RawRow
from cdp.ingest.imports.rows import ROW_DOMAIN, Context, ProfileRow, clean_profile
from cdp.profiles.models import Customer, Identity, SourceRecord
from tests.ingest.imports.helpers import assert_reconciles, run_import

pytestmark = pytest.mark.django_db

MAPPING = {
    "email": "email",
    "phone": "phone",
    "first_name": "first_name",
    "birth_date": "birth_date",
    "tier": "trait:tier",
    "plan": "attribute:plan",
    "ltv": "attribute:ltv",
}


def _context(mapping: dict[str, str]) -> Context:
    return Context(
        headers=list(mapping),
        mapping=mapping,
        source_name="crm",
        region="GB",
        day_first=False,
        currency="",
        rules=("customer_id", "email", "phone"),
        blocked={},
    )


def test_bulk_written_profiles_identities_and_records_decrypt_through_the_model_fields() -> None:
    body = (
        "email,phone,first_name,birth_date,tier,plan,ltv\n"
        "Ann@Shop.example,020 7946 0958,Zoë,1980-01-02,gold,pro,12.5\n"
    )

    job = run_import(body.encode(), mapping=MAPPING, options={"default_region": "GB"})

    assert_reconciles(job)
    assert (job.created, job.rejected) == (1, 0)
    customer = Customer.objects.get()
    assert (customer.email, customer.phone, customer.first_name) == (
        "ann@shop.example",
        "+442079460958",
        "Zoë",
    )
    assert customer.birth_date == dt.date(1980, 1, 2)
    assert customer.traits == {"tier": "gold"}
    assert customer.attributes == {"plan": "pro", "ltv": 12.5}
    assert (customer.country, customer.jurisdiction) == ("", "other")
    assert sorted(Identity.objects.values_list("kind", "namespace")) == [
        ("email", ""),
        ("phone", ""),
    ]
    assert sorted(i.value for i in Identity.objects.all()) == ["+442079460958", "ann@shop.example"]
    record = SourceRecord.objects.get()
    assert record.data["attribute:ltv"] == 12.5 and record.data["first_name"] == "Zoë"
    assert record.customer_id == customer.pk


def test_row_fingerprint_is_the_same_bytes_as_the_json_dumps_formula() -> None:
    # Re-uploading a file imported by an earlier version must find its rows: the fingerprint
    # is the blind index of json.dumps(record, sort_keys, default=str, ensure_ascii=False).
    ctx = _context(MAPPING)
    raw = RawRow(2, ["a@shop.example", "+442079460958", "Zoë", "1980-01-02", "1", "pro", "3.50"])

    row = clean_profile(raw, ctx)

    assert isinstance(row, ProfileRow)
    text = json.dumps(row.record, sort_keys=True, default=str, ensure_ascii=False)
    assert row.row_index == blind_index(text, domain=ROW_DOMAIN)
    assert row.record["trait:tier"] == 1 and row.record["attribute:ltv"] == 3.5


def test_identifiers_repeated_in_a_file_are_normalised_once(monkeypatch) -> None:
    calls: list[str] = []
    real = rows.identifier_index

    def counting(kind: str, value: str, **kwargs: object) -> tuple[str, bytes]:
        calls.append(kind)
        return real(kind, value, **kwargs)

    real_phone = rows.phone_e164

    def counting_phone(value: str, region: str | None) -> str:
        calls.append("phone")
        return real_phone(value, region)

    real_email = rows.normalize_email

    def counting_email(value: str) -> str:
        calls.append("email")
        return real_email(value)

    monkeypatch.setattr(rows, "identifier_index", counting)
    monkeypatch.setattr(rows, "phone_e164", counting_phone)
    monkeypatch.setattr(rows, "normalize_email", counting_email)
    ctx = _context({"email": "email", "phone": "phone"})

    cleaned = [
        clean_profile(RawRow(n, ["a@shop.example", "020 7946 0958"]), ctx) for n in range(2, 6)
    ]

    assert sorted(calls) == ["email", "phone"]
    assert cleaned[0].fields["phone"] == "+442079460958"
    assert len({c.row_index for c in cleaned}) == 1


def test_invalid_e_mail_in_a_row_is_still_rejected_with_its_code() -> None:
    ctx = _context({"email": "email"})

    result = clean_profile(RawRow(2, ["not an e-mail"]), ctx)

    assert [(e.column, e.code) for e in result] == [("email", "invalid_email")]


def test_presence_counted_per_chunk_equals_counting_each_cell() -> None:
    headers = ["a", "b", "a"]
    rng = random.Random(7)
    values = [
        [rng.choice(["", " ", "x", " y "]) for _ in range(rng.choice([2, 3, 3, 3]))]
        for _ in range(200)
    ]
    expected = quality.new_state()
    for row in values:
        if len(row) == len(headers):
            for header, value in zip(headers, row, strict=True):
                quality.observe_presence(expected, header, bool(value.strip()))

    state = quality.new_state()
    quality.observe_presence_rows(state, headers, values)

    assert state == expected


def test_a_copied_identity_someone_else_linked_first_is_an_integrity_error() -> None:
    """The run retries a chunk on Django's IntegrityError; the bulk COPY must raise that one
    (psycopg's own UniqueViolation would fail the job instead of planning the chunk again)."""
    from django.db import IntegrityError, transaction

    from cdp.ingest.imports.bulk import identities_copy

    job = run_import(b"email\nann@shop.example\n", mapping={"email": "email"})
    assert job.created == 1
    identity = Identity.objects.get(kind="email")
    customer = Customer.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        identities_copy(
            [("email", "", "ann@shop.example", bytes(identity.value_index), customer.id)]
        )
