import uuid

import pytest

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
