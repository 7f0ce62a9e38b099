"""A raw read of every table after creating customers finds no plaintext personal data."""

import pytest
from django.db import connection

from cdp.profiles.models import IdentityKind
from cdp.profiles.services import IdentifierValue, customer_create, customer_reveal

pytestmark = pytest.mark.django_db

PEOPLE = [
    ("alice.wonder@example.org", "+14155550132", "Alicia", "Wonderland"),
    ("bob.builder@example.net", "+442079460958", "Roberto", "Constructor"),
]


def all_rows_as_text() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        tables = [name for (name,) in cursor.fetchall()]
        rows = []
        for table in tables:
            cursor.execute(f'SELECT row_to_json(t)::text FROM "{table}" t')
            rows.extend(text for (text,) in cursor.fetchall())
    return rows


def test_no_table_holds_plaintext_email_phone_or_name():
    for email, phone, first, last in PEOPLE:
        customer = customer_create(
            actor="system",
            email=email,
            phone=phone,
            first_name=first,
            last_name=last,
            traits={"nickname": first},
            identifiers=[IdentifierValue(IdentityKind.USER_ID, f"user-{first}")],
        )
        customer_reveal(customer=customer, actor="user:1", reason="test")

    rows = all_rows_as_text()

    assert len(rows) > 10
    haystack = "\n".join(rows).lower()
    for email, phone, first, last in PEOPLE:
        for secret in (email, phone, phone.lstrip("+"), first, last, f"user-{first}"):
            assert secret.lower() not in haystack, secret
            assert secret.encode().hex() not in haystack, f"{secret} (hex)"
