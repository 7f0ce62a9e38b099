"""Identifiers of tracking messages: normalised and indexed once per raw string in a per-process
cache, with blocked values and the index key in force decided per request."""

from __future__ import annotations

import os

from django.test import override_settings

from cdp.ingest.identifiers import BatchIdentifiers, indexed
from cdp.profiles.models import IdentityKind
from cdp.profiles.resolution import blocked_values, identifier


@override_settings(CDP_DEK_CACHE_SECONDS=3600)
def test_cached_identifiers_equal_what_identifier_computes_and_are_reused():
    indexed.cache_clear()
    values = [
        (IdentityKind.USER_ID, " user-1 "),
        (IdentityKind.EMAIL, "Ada@Shop.example"),
        (IdentityKind.PHONE, "+44 20 7946 0011"),
        (IdentityKind.PHONE, "not a number"),
    ]
    for kind, value in values:
        assert BatchIdentifiers(blocked_values()).get(kind, value) == identifier(
            kind, value, blocked_values()
        )
    misses = indexed.cache_info().misses

    for kind, value in values:
        BatchIdentifiers(blocked_values()).get(kind, value)  # a later request

    assert indexed.cache_info().misses == misses
    assert indexed.cache_info().hits >= len(values)


def test_a_value_blocked_after_it_was_cached_is_refused():
    ident = BatchIdentifiers(blocked_values()).get(IdentityKind.PHONE, "+44 20 7946 0013")
    assert ident is not None and ident.normalized == "+442079460013"

    with override_settings(CDP_BLOCKED_IDENTIFIERS=["phone:+442079460013"]):
        refused = BatchIdentifiers(blocked_values()).get(IdentityKind.PHONE, "+44 20 7946 0013")

    assert refused is None


def test_a_new_index_key_empties_the_cache():
    before = BatchIdentifiers(blocked_values()).get(IdentityKind.USER_ID, "user-2")

    with override_settings(CDP_INDEX_KEY=os.urandom(32)):
        after = BatchIdentifiers(blocked_values()).get(IdentityKind.USER_ID, "user-2")
        expected = identifier(IdentityKind.USER_ID, "user-2", blocked_values())

    assert after == expected
    assert after is not None and before is not None and after.index != before.index


def test_the_cache_is_emptied_after_the_data_key_lifetime():
    with override_settings(CDP_DEK_CACHE_SECONDS=3600):
        BatchIdentifiers(blocked_values()).get(IdentityKind.USER_ID, "user-3")
        BatchIdentifiers(blocked_values()).get(IdentityKind.USER_ID, "user-3")
        assert indexed.cache_info().currsize > 0

    with override_settings(CDP_DEK_CACHE_SECONDS=0):
        BatchIdentifiers(blocked_values())  # the next request

        assert indexed.cache_info().currsize == 0
