"""New profiles get time-ordered ids (UUIDv7), on every path that creates them: their id keys
the data key, identities, source records and events, whose indexes then grow at one edge."""

from __future__ import annotations

import time
import uuid

import pytest

from cdp.profiles.models import Customer
from tests.ingest.conftest import message
from tests.ingest.imports.helpers import run_import
from tests.profiles.factories import make_customer

pytestmark = pytest.mark.django_db


def _millis(cid: uuid.UUID) -> int:
    return cid.int >> 80


def test_profiles_from_the_orm_tracking_and_imports_have_time_ordered_ids(post) -> None:
    before = time.time_ns() // 1_000_000
    made = make_customer().id
    post("batch", {"batch": [message(userId="u-1"), message(userId="u-2")]})
    tracked = set(Customer.objects.values_list("id", flat=True)) - {made}
    run_import(b"email\na@shop.example\nb@shop.example\nc@shop.example\n")
    imported = set(Customer.objects.values_list("id", flat=True)) - tracked - {made}
    after = time.time_ns() // 1_000_000

    assert len(tracked) == 2 and len(imported) == 3
    for cid in (made, *tracked, *imported):
        assert (cid.version, cid.variant) == (7, uuid.RFC_4122)
        assert before <= _millis(cid) <= after
    # Later profiles sort after earlier ones (to the millisecond their ids carry).
    assert _millis(made) <= min(map(_millis, tracked)) <= max(map(_millis, tracked))
    assert max(map(_millis, tracked)) <= min(map(_millis, imported))
