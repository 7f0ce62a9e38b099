import uuid

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cdp.crypto.errors import DecryptionError
from cdp.crypto.models import SubjectKey
from cdp.crypto.subject_keys import (
    _cache,
    cache_clear,
    subject_key_get,
    subject_key_get_or_create,
    subject_keys_load,
)

pytestmark = pytest.mark.django_db


def test_data_keys_are_stored_only_wrapped():
    subject = uuid.uuid4()
    key = subject_key_get_or_create(subject)
    row = SubjectKey.objects.get(subject_id=subject)
    assert len(bytes(row.wrapped_key)) == 12 + 32 + 16
    assert row.key_id == key.key_id


def test_get_or_create_returns_the_same_key_twice():
    subject = uuid.uuid4()
    first = subject_key_get_or_create(subject)
    cache_clear()
    second = subject_key_get_or_create(subject)
    assert first.key_id == second.key_id
    assert SubjectKey.objects.filter(subject_id=subject).count() == 1


def test_wrapped_key_moved_to_another_subject_does_not_unwrap():
    from cdp.crypto.errors import DecryptionError

    alice, bob = uuid.uuid4(), uuid.uuid4()
    subject_key_get_or_create(alice)
    subject_key_get_or_create(bob)
    alice_row = SubjectKey.objects.get(subject_id=alice)
    SubjectKey.objects.filter(subject_id=bob).update(
        wrapped_key=alice_row.wrapped_key, key_id=alice_row.key_id
    )
    cache_clear()
    with pytest.raises(DecryptionError):
        subject_key_get(bob)


def test_cache_is_bounded(settings):
    settings.CDP_DEK_CACHE_SIZE = 2
    cache_clear()
    for _ in range(3):
        subject_key_get_or_create(uuid.uuid4())
    assert len(_cache) == 2


def test_cache_entries_expire(settings):
    settings.CDP_DEK_CACHE_SECONDS = 0
    cache_clear()
    subject = uuid.uuid4()
    subject_key_get_or_create(subject)
    assert _cache.get(subject) is None


def test_load_warms_many_keys_in_one_query(django_assert_num_queries):
    subjects = [uuid.uuid4() for _ in range(20)]
    for subject in subjects:
        subject_key_get_or_create(subject)
    cache_clear()
    with django_assert_num_queries(1):
        assert subject_keys_load(subjects) == 20
    with django_assert_num_queries(0):
        for subject in subjects:
            subject_key_get(subject)


def test_create_many_inserts_missing_keys_once_and_keeps_existing_ones(django_assert_num_queries):
    from cdp.crypto.subject_keys import subject_keys_create

    existing = uuid.uuid4()
    before = subject_key_get_or_create(existing).key_id
    cache_clear()
    fresh = [uuid.uuid4() for _ in range(50)]
    with django_assert_num_queries(2):  # one INSERT, one SELECT to load them
        subject_keys_create([existing, *fresh])
    assert SubjectKey.objects.filter(subject_id__in=fresh).count() == 50
    assert SubjectKey.objects.get(subject_id=existing).key_id == before
    assert subject_key_get(existing).key_id == before


def test_keys_created_in_bulk_are_what_keyring_unwrap_reads_from_the_stored_rows() -> None:
    """The batched wrapping keeps `Keyring.wrap`'s format: each stored row unwraps, under its
    own subject and key id, to the very key the cache holds (a value sealed with the cached key
    opens with the unwrapped one), and no two subjects share a key, key id or nonce."""
    from cdp.crypto.keyring import get_keyring
    from cdp.crypto.subject_keys import subject_keys_create

    cache_clear()
    subjects = [uuid.uuid4() for _ in range(40)]
    subject_keys_create(subjects)
    cached = {s: _cache.get(s) for s in subjects}
    assert all(cached.values())
    rows = {r.subject_id: r for r in SubjectKey.objects.filter(subject_id__in=subjects)}
    keyring = get_keyring()
    deks = set()
    for subject in subjects:
        row = rows[subject]
        assert row.kek_id == keyring.primary_id
        assert row.key_id == cached[subject].key_id
        dek = keyring.unwrap(
            bytes(row.wrapped_key), kek_id=row.kek_id, subject_id=str(subject), key_id=row.key_id
        )
        deks.add(dek)
        sealed = cached[subject].cipher.encrypt(b"\0" * 12, b"value", b"aad")
        assert AESGCM(dek).decrypt(b"\0" * 12, sealed, b"aad") == b"value"
        with pytest.raises(DecryptionError):  # bound to its subject
            keyring.unwrap(
                bytes(row.wrapped_key),
                kek_id=row.kek_id,
                subject_id=str(subjects[0] if subject != subjects[0] else subjects[1]),
                key_id=row.key_id,
            )
    assert len(deks) == 40
    assert len({r.key_id for r in rows.values()}) == 40
    assert len({bytes(r.wrapped_key)[:12] for r in rows.values()}) == 40
    # A fresh process reads the same key from the row.
    cache_clear()
    assert subject_key_get(subjects[3]).key_id == cached[subjects[3]].key_id


def test_keys_for_made_up_subjects_are_copied_in_and_returned(django_assert_num_queries) -> None:
    """`subject_keys_create_new`: one COPY, the returned keys are the cached ones and the stored
    rows unwrap to them; a subject that already has a key fails the statement instead of being
    given a second one."""
    from django.db import IntegrityError, transaction

    from cdp.crypto.keyring import get_keyring
    from cdp.crypto.subject_keys import subject_keys_create_new

    subjects = [uuid.uuid4() for _ in range(30)]
    keys = subject_keys_create_new(subjects)
    assert set(keys) == set(subjects)
    keyring = get_keyring()
    for row in SubjectKey.objects.filter(subject_id__in=subjects):
        key = keys[row.subject_id]
        assert _cache.get(row.subject_id) is key
        assert row.key_id == key.key_id
        dek = keyring.unwrap(
            bytes(row.wrapped_key),
            kek_id=row.kek_id,
            subject_id=str(row.subject_id),
            key_id=row.key_id,
        )
        sealed = key.cipher.encrypt(b"\1" * 12, b"v", b"")
        assert AESGCM(dek).decrypt(b"\1" * 12, sealed, b"") == b"v"
    assert SubjectKey.objects.filter(subject_id__in=subjects).count() == 30
    before = SubjectKey.objects.get(subject_id=subjects[0]).wrapped_key
    with pytest.raises(IntegrityError), transaction.atomic():
        subject_keys_create_new([subjects[0]])
    assert SubjectKey.objects.get(subject_id=subjects[0]).wrapped_key == before
