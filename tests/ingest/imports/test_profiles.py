"""Profile imports: resolution rules, merges, survivorship, consent columns, lineage, re-upload."""

from __future__ import annotations

import pytest

from cdp.ingest.imports.services import column_mapping_save, import_source_get_or_create
from cdp.ingest.models import ImportKind, ImportStatus
from cdp.profiles.models import Customer, CustomerStatus, Merge, SourceRecord
from cdp.profiles.services import identifier_index
from consent.models import ConsentEvent
from tests.ingest.imports.helpers import assert_reconciles, run_import
from tests.profiles.factories import make_customer

pytestmark = pytest.mark.django_db


def test_duplicates_inside_the_file_and_against_existing_profiles_are_found() -> None:
    existing = make_customer(email="old@shop.example")
    body = (
        "email,first_name\n"
        "new@shop.example,Ann\n"
        "NEW@shop.example,Ann\n"  # the same row once normalised
        "old@shop.example,Olga\n"
        "new@shop.example,Anna\n"  # the same person, a newer value
    )

    job = run_import(body.encode())

    assert_reconciles(job)
    assert (job.created, job.updated, job.duplicates, job.rejected) == (1, 2, 1, 0)
    assert Customer.objects.count() == 2
    existing.refresh_from_db()
    assert existing.first_name == "Olga"
    assert Customer.objects.exclude(pk=existing.pk).get().first_name == "Anna"
    assert SourceRecord.objects.count() == 3


def test_reuploading_the_same_file_changes_nothing() -> None:
    body = b"customer_id,email,country\n1,a@shop.example,FR\n2,b@shop.example,DE\n"
    first = run_import(body)
    before = list(Customer.objects.order_by("id").values_list("id", "updated_at"))

    second = run_import(body, name="again.csv")

    assert (first.created, second.created, second.updated, second.duplicates) == (2, 0, 0, 2)
    assert list(Customer.objects.order_by("id").values_list("id", "updated_at")) == before


def test_rule_order_and_merges_record_the_rule_that_matched() -> None:
    by_email = make_customer(email="eve@shop.example")
    by_phone = make_customer(phone="+442079460999")
    body = b"email,phone,first_name\neve@shop.example,+442079460999,Eve\n"

    job = run_import(body)

    assert_reconciles(job)
    assert job.updated == 1 and job.stats["merges"] == 1
    merge = Merge.objects.get()
    assert (merge.into_customer_id, merge.from_customer_id) == (by_email.pk, by_phone.pk)
    assert merge.rule == "shared_identifier:phone"
    by_phone.refresh_from_db()
    assert by_phone.status == CustomerStatus.MERGED


def test_phone_first_rule_order_picks_the_phone_profile() -> None:
    make_customer(email="eve@shop.example")
    by_phone = make_customer(phone="+442079460999")
    body = b"email,phone\neve@shop.example,+442079460999\n"

    run_import(body, options={"rules": ["phone", "email"]})

    assert Merge.objects.get().into_customer_id == by_phone.pk


def test_two_ids_of_one_source_are_never_merged() -> None:
    run_import(b"customer_id,email\n1,a@shop.example\n2,b@shop.example\n")

    job = run_import(b"customer_id,email\n2,a@shop.example\n", name="second.csv")

    assert job.stats["merges_refused"] == 1
    assert Merge.objects.count() == 0
    assert Customer.objects.filter(status=CustomerStatus.ACTIVE).count() == 2


def test_survivorship_keeps_values_of_a_higher_priority_source() -> None:
    master = import_source_get_or_create(name="master", actor="test")
    column_mapping_save(
        source=master,
        kind=ImportKind.PROFILES,
        mapping={"email": "email", "first_name": "first_name"},
        options={},
        actor="test",
        priority=10,
    )
    run_import(b"email,first_name\nz@shop.example,Zoe\n", source="master")

    run_import(b"email,first_name,last_name\nz@shop.example,Zed,Zulu\n", source="webshop")

    customer = Customer.objects.get()
    assert (customer.first_name, customer.last_name) == ("Zoe", "Zulu")  # gap filled only


def test_latest_non_empty_value_wins_between_equal_sources() -> None:
    run_import(b"email,first_name,last_name\nz@shop.example,Zoe,Old\n", source="a")

    run_import(b"email,first_name,last_name\nz@shop.example,,New\n", source="b")

    customer = Customer.objects.get()
    assert (customer.first_name, customer.last_name) == ("Zoe", "New")


def test_changed_stored_profiles_get_every_kind_of_column_in_one_chunk() -> None:
    """Existing profiles changed in different columns (so in different UPDATEs of one chunk):
    sealed values, blind index, plaintext country and jurisdiction, JSON attributes and traits."""
    mapping = {
        "email": "email",
        "phone": "phone",
        "country": "country",
        "plan": "attribute:plan",
        "shoe": "trait:shoe",
    }
    run_import(
        b"email,phone,country,plan,shoe\n"
        b"a@shop.example,+442079460001,GB,free,41\n"
        b"b@shop.example,+442079460002,GB,free,42\n",
        source="a",
        mapping=mapping,
    )
    before = {c.email: c.updated_at for c in Customer.objects.all()}

    job = run_import(
        b"email,phone,country,plan,shoe\n"
        b"a@shop.example,,United States,pro,43\n"
        b"b@shop.example,+442079460099,,,\n",
        source="b",
        mapping=mapping,
    )

    assert (job.created, job.updated, job.rejected) == (0, 2, 0)
    a, b = sorted(Customer.objects.all(), key=lambda c: c.email)
    assert (a.phone, a.country, a.jurisdiction) == ("+442079460001", "US", "ccpa")
    assert (a.attributes, a.traits) == ({"plan": "pro"}, {"shoe": 43})
    assert (b.phone, b.country, b.attributes, b.traits) == (
        "+442079460099",
        "GB",
        {"plan": "free"},
        {"shoe": 42},
    )
    assert b.phone_index == identifier_index("phone", "+442079460099")[1]
    assert all(c.updated_at > before[c.email] for c in (a, b))


def test_consent_columns_become_ledger_entries_with_the_import_channel() -> None:
    body = (
        "email,marketing_opt_in,marketing_opt_in_date\n"
        "a@shop.example,yes,2024-03-01\n"
        "b@shop.example,no,2024-03-02\n"
        "c@shop.example,,\n"
    )

    job = run_import(body.encode())

    assert job.mapping["marketing_opt_in"] == "consent:marketing"
    assert job.mapping["marketing_opt_in_date"] == "consent_date:marketing"
    events = ConsentEvent.objects.order_by("at")
    assert [(e.purpose_code, e.granted, e.channel) for e in events] == [
        ("marketing", True, "import"),
        ("marketing", False, "import"),
    ]
    assert events[0].at.date().isoformat() == "2024-03-01"
    assert job.stats["consents_recorded"] == 2


def test_rows_of_restricted_profiles_are_rejected() -> None:
    make_customer(email="r@shop.example")
    Customer.objects.update(status=CustomerStatus.RESTRICTED)

    job = run_import(b"email,first_name\nr@shop.example,Ray\n")

    assert job.status == ImportStatus.COMPLETED
    assert list(job.row_errors.values_list("code", flat=True)) == ["restricted"]


def test_source_records_keep_lineage_encrypted() -> None:
    job = run_import(b"customer_id,email\n1,a@shop.example\n")

    record = SourceRecord.objects.get()
    assert (record.job_id, record.row_number, record.source_name) == (job.pk, 2, "crm")
    assert record.data == {"customer_id": "1", "email": "a@shop.example"}
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT data FROM profiles_sourcerecord")
        assert b"a@shop.example" not in bytes(cursor.fetchone()[0])
