"""The ledger: append-only at the database, keyed chain, verification naming the broken entry."""

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from cdp.audit.chain import GENESIS, HASH_MISMATCH, LINK_BROKEN, SEQUENCE_GAP
from consent.ledger import ledger_key, ledger_verify, proof_hash
from consent.models import Channel, ConsentEvent, ConsentState
from consent.services import consent_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_entries(make_purpose, customer_in):
    make_purpose("marketing")
    customer = customer_in("gdpr")
    return [
        consent_record(
            customer=customer,
            purpose_code="marketing",
            granted=granted,
            channel=Channel.API,
            method="web-form",
            actor="system",
            ip="203.0.113.7",
            user_agent="Mozilla/5.0 (X11; Linux x86_64)",
        )
        for granted in (True, False, True)
    ]


def execute(sql, params=None):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_entries_are_numbered_from_one_and_linked(three_entries):
    assert [e.seq for e in three_entries] == [1, 2, 3]
    assert bytes(three_entries[0].prev_hash) == GENESIS
    assert bytes(three_entries[1].prev_hash) == bytes(three_entries[0].hash)
    report = ledger_verify()
    assert (report.ok, report.checked, report.head_seq) == (True, 3, 3)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE consent_consentevent SET granted = NOT granted WHERE seq = 2",
        "DELETE FROM consent_consentevent WHERE seq = 2",
        "TRUNCATE consent_consentevent",
    ],
    ids=["update", "delete", "truncate"],
)
def test_database_refuses_to_change_or_remove_entries(three_entries, sql):
    with pytest.raises(DatabaseError, match="consent ledger is append-only"):
        execute(sql)
    assert ConsentEvent.objects.count() == 3
    assert ConsentEvent.objects.get(seq=2).granted is False


def test_orm_update_and_delete_are_refused_too(three_entries):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ConsentEvent.objects.filter(seq=1).update(method="edited")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ConsentEvent.objects.filter(seq=1).delete()


def test_raw_sql_edit_makes_the_command_fail_naming_the_entry(three_entries, tamper, capsys):
    # Given an entry whose decision was flipped by someone who bypassed the triggers
    tamper("UPDATE consent_consentevent SET granted = true WHERE seq = 2")

    # When the ledger is verified, then the command fails and names seq 2
    with pytest.raises(CommandError) as excinfo:
        call_command("verify_consent_ledger")
    message = str(excinfo.value)
    assert message.startswith("consent ledger BROKEN at seq 2 (purpose marketing")
    assert HASH_MISMATCH in message
    assert "1 entries verified before it" in message


def test_rehashing_without_the_key_breaks_the_next_link(three_entries, tamper):
    # Given an attacker who rewrites entry 2 and gives it a hash made with another key
    import hashlib

    tamper(
        "UPDATE consent_consentevent SET granted = true, hash = %s WHERE seq = 2",
        [hashlib.sha256(b"forged").digest()],
    )
    report = ledger_verify()
    assert (report.first_broken, report.reason) == (2, HASH_MISMATCH)


def test_deleted_entry_is_reported_as_a_gap(three_entries, tamper):
    tamper("DELETE FROM consent_consentevent WHERE seq = 2")
    report = ledger_verify()
    assert (report.first_broken, report.reason) == (3, SEQUENCE_GAP)


def test_deleted_first_entry_breaks_the_genesis_link(three_entries, tamper):
    tamper("DELETE FROM consent_consentevent WHERE seq = 1")
    report = ledger_verify()
    assert (report.first_broken, report.reason) == (2, LINK_BROKEN)


def test_clean_ledger_passes_the_command(three_entries, capsys):
    call_command("verify_consent_ledger")
    assert capsys.readouterr().out.strip() == "3 entries checked; consent ledger OK"


def test_ledger_key_is_distinct_from_the_audit_key(settings):
    assert ledger_key() != settings.CDP_AUDIT_KEY
    assert len(ledger_key()) == 32


def test_ip_and_user_agent_are_stored_only_as_keyed_hashes(three_entries):
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(e)::text FROM consent_consentevent e")
        dump = " ".join(row[0] for row in cursor.fetchall())
    assert "203.0.113.7" not in dump
    assert "Mozilla" not in dump
    entry = ConsentEvent.objects.get(seq=1)
    assert bytes(entry.ip_hash) == proof_hash("ip", "203.0.113.7")
    assert bytes(entry.user_agent_hash) == proof_hash("ua", "Mozilla/5.0 (X11; Linux x86_64)")


def test_ledger_still_verifies_after_the_customer_is_erased(three_entries):
    # Given a customer with three ledger entries and a consent state
    customer_id = three_entries[0].customer_id
    assert ConsentState.objects.filter(customer_id=customer_id).count() == 1

    # When the customer row is deleted (erasure)
    from cdp.profiles.models import Customer

    Customer.objects.filter(pk=customer_id).delete()

    # Then the state is gone, the ledger entries stay and the chain verifies
    assert ConsentState.objects.filter(customer_id=customer_id).count() == 0
    assert ConsentEvent.objects.filter(customer_id=customer_id).count() == 3
    assert ledger_verify().ok


def test_the_ledger_insert_writes_every_column_of_the_model():
    import re

    from consent.ledger import _COLUMNS, _INSERT

    assert {name for name, _ in _COLUMNS} == {
        field.column for field in ConsentEvent._meta.concrete_fields
    }
    listed = re.search(r"\(([^)]*)\)", _INSERT).group(1)
    assert [c.strip() for c in listed.split(",")] == [name for name, _ in _COLUMNS]
    casts = re.findall(r"%s::(\w+)\[\]", _INSERT)
    assert casts == [kind for _, kind in _COLUMNS]
