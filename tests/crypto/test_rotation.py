"""KEK rotation re-wraps data keys; everything stays readable and the old KEK can be retired."""

import pytest
from django.core.management import CommandError, call_command

from cdp.crypto.models import SubjectKey
from cdp.crypto.subject_keys import cache_clear, subject_keys_rotate
from cdp.profiles.models import Customer

pytestmark = pytest.mark.django_db

OLD = ("old", b"\x01" * 32)
NEW = ("new", b"\x02" * 32)


@pytest.fixture
def old_keys(settings):
    settings.CDP_KEKS = [OLD]
    cache_clear()
    customers = [Customer.objects.create(email=f"c{i}@example.com") for i in range(7)]
    cache_clear()
    return customers


def read_all(customers):
    cache_clear()
    return [Customer.objects.get(pk=c.pk).email for c in customers]


def test_rotation_rewraps_every_key_and_the_old_kek_can_be_retired(settings, old_keys, capsys):
    settings.CDP_KEKS = [NEW, OLD]

    call_command("rotate_keys", batch_size=3)

    out = capsys.readouterr()
    assert "rotated 7, already current 0, failed 0" in out.out
    assert "7/7 keys" in out.err
    assert set(SubjectKey.objects.values_list("kek_id", flat=True)) == {"new"}
    settings.CDP_KEKS = [NEW]
    assert read_all(old_keys) == [f"c{i}@example.com" for i in range(7)]


def test_rotation_does_not_rewrite_the_data(settings, old_keys):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT id, email FROM profiles_customer ORDER BY id")
        before = [(pk, bytes(blob)) for pk, blob in cursor.fetchall()]
    settings.CDP_KEKS = [NEW, OLD]
    call_command("rotate_keys")
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, email FROM profiles_customer ORDER BY id")
        after = [(pk, bytes(blob)) for pk, blob in cursor.fetchall()]
    assert after == before


def test_rerun_after_completion_rotates_nothing(settings, old_keys, capsys):
    settings.CDP_KEKS = [NEW, OLD]
    call_command("rotate_keys")
    capsys.readouterr()
    call_command("rotate_keys")
    assert "rotated 0, already current 7, failed 0" in capsys.readouterr().out


def test_interrupted_rotation_resumes_where_it_stopped(settings, old_keys):
    settings.CDP_KEKS = [NEW, OLD]

    class Interrupted(Exception):
        pass

    def stop_after_first_batch(done, total):
        raise Interrupted

    with pytest.raises(Interrupted):
        subject_keys_rotate(batch_size=3, on_progress=stop_after_first_batch)
    assert SubjectKey.objects.filter(kek_id="new").count() == 3

    report = subject_keys_rotate(batch_size=3)

    assert report.rotated == 4
    assert report.already_current == 3
    assert SubjectKey.objects.filter(kek_id="new").count() == 7
    settings.CDP_KEKS = [NEW]
    assert read_all(old_keys) == [f"c{i}@example.com" for i in range(7)]


def test_rotation_fails_loudly_when_an_old_kek_is_missing(settings, old_keys):
    settings.CDP_KEKS = [NEW]
    with pytest.raises(CommandError, match="missing from CDP_KEKS"):
        call_command("rotate_keys")
    assert set(SubjectKey.objects.values_list("kek_id", flat=True)) == {"old"}


def test_rotation_is_audited(settings, old_keys):
    from cdp.audit.models import AuditEntry

    settings.CDP_KEKS = [NEW, OLD]
    call_command("rotate_keys")
    entry = AuditEntry.objects.filter(action="crypto.rotate_keys").get()
    assert entry.details["rotated"] == 7
    assert entry.details["primary_kek"] == "new"
