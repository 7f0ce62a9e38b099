import datetime

import pytest
from django.db import IntegrityError, transaction

from cdp.audit.models import AuditEntry
from cdp.crypto.blind_index import email_index, phone_index
from cdp.crypto.errors import NormalizationError
from cdp.profiles.models import Customer, Identity, IdentityKind
from cdp.profiles.selectors import customer_find_by_identifier
from cdp.profiles.services import IdentifierValue, customer_create, customer_reveal

from .factories import make_customer

pytestmark = pytest.mark.django_db


def test_create_normalises_encrypts_and_indexes_identifiers():
    customer = customer_create(
        actor="system",
        email=" Jane.Doe@Example.COM ",
        phone="020 7946 0958",
        first_name="Jane",
        country="United Kingdom",
        birth_date=datetime.date(1990, 5, 17),
    )
    loaded = Customer.objects.get(pk=customer.pk)
    assert loaded.email == "jane.doe@example.com"
    assert loaded.phone == "+442079460958"
    assert loaded.country == "GB"
    assert loaded.jurisdiction == "gdpr"
    assert bytes(loaded.email_index) == email_index("jane.doe@example.com")
    assert bytes(loaded.phone_index) == phone_index("+442079460958")
    kinds = sorted(Identity.objects.filter(customer=customer).values_list("kind", flat=True))
    assert kinds == ["email", "phone"]


@pytest.mark.parametrize(
    ("country", "jurisdiction"),
    [
        ("DE", "gdpr"),
        ("Norway", "gdpr"),
        ("UK", "gdpr"),
        ("USA", "ccpa"),
        ("JP", "other"),
        ("", "other"),
    ],
)
def test_jurisdiction_follows_country(country, jurisdiction):
    customer = customer_create(actor="system", country=country)
    assert customer.jurisdiction == jurisdiction


def test_create_is_audited_without_personal_data():
    customer = make_customer(email="jane@example.com")
    entry = AuditEntry.objects.get(action="customer.create", object_id=str(customer.pk))
    assert entry.details == {"identities": ["email", "phone"]}
    assert "jane" not in str(entry.details)


def test_malformed_email_is_refused_and_nothing_is_stored():
    with pytest.raises(NormalizationError) as excinfo:
        customer_create(actor="system", email="not-an-email")
    assert "not-an-email" not in str(excinfo.value)
    assert Customer.objects.count() == 0


def test_an_identifier_belongs_to_one_customer():
    make_customer(email="jane@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_customer(email="JANE@example.com")
    assert Customer.objects.count() == 1


def test_lookup_by_identifier_uses_the_blind_index():
    customer = make_customer(
        email="jane@example.com", identifiers=[IdentifierValue(IdentityKind.USER_ID, "u-42")]
    )
    assert customer_find_by_identifier("email", "Jane@Example.com") == customer
    assert customer_find_by_identifier("user_id", "u-42") == customer
    assert customer_find_by_identifier("user_id", "u-43") is None
    assert customer_find_by_identifier("email", "garbage") is None


def test_reveal_returns_decrypted_fields_and_audits_which_were_shown():
    customer = make_customer(email="jane@example.com", first_name="Jane")
    values = customer_reveal(customer=customer, actor="user:7", reason="subject asked")
    assert values["email"] == "jane@example.com"
    assert values["first_name"] == "Jane"
    entry = AuditEntry.objects.get(action="customer.reveal")
    assert entry.actor == "user:7"
    assert entry.object_id == str(customer.pk)
    assert "email" in entry.details["fields"]
    assert "jane" not in str(entry.details)
