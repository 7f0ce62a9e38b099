"""Encrypted model fields: exact round-trips, NULL, and failing closed on any tampering."""

import datetime
import decimal

import pytest
from django.core.exceptions import FieldError
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.crypto.errors import DecryptionError, EncryptionContextError, KeyDestroyedError
from cdp.crypto.fields import Sealed
from cdp.crypto.subject_keys import cache_clear
from cdp.profiles.models import Customer, Identity, IdentityKind

pytestmark = pytest.mark.django_db

db_examples = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def reload(customer: Customer) -> Customer:
    return Customer.objects.get(pk=customer.pk)


def raw_column(table: str, column: str, pk) -> object:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


@db_examples
@given(value=st.text(max_size=2000))
def test_text_round_trips_exactly(value):
    customer = Customer.objects.create(email=value)
    assert reload(customer).email == value


def test_large_text_round_trips():
    value = "é€𝄞" * 100_000
    customer = Customer.objects.create(first_name=value)
    assert reload(customer).first_name == value


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
).filter(lambda v: v is not None)


@db_examples
@given(value=json_values)
def test_json_round_trips_exactly_with_types(value):
    customer = Customer.objects.create(traits=value)
    loaded = reload(customer).traits
    assert loaded == value
    assert type(loaded) is type(value)


@db_examples
@given(value=st.dates())
def test_dates_round_trip(value):
    customer = Customer.objects.create(birth_date=value)
    assert reload(customer).birth_date == value


@pytest.mark.parametrize("value", ["", False, 0, [], {}, "0"])
def test_falsy_values_round_trip_exactly(value):
    customer = Customer.objects.create(traits=value)
    loaded = reload(customer).traits
    assert loaded == value
    assert type(loaded) is type(value)
    assert raw_column("profiles_customer", "traits", customer.pk) is not None


def test_empty_string_is_stored_as_ciphertext_not_null():
    customer = Customer.objects.create(first_name="")
    assert reload(customer).first_name == ""
    assert raw_column("profiles_customer", "first_name", customer.pk) is not None


def test_null_stays_null():
    customer = Customer.objects.create(email=None)
    assert raw_column("profiles_customer", "email", customer.pk) is None
    assert reload(customer).email is None
    assert Customer.objects.filter(email__isnull=True, pk=customer.pk).exists()


def test_decimal_field_round_trips():
    from cdp.crypto.fields import EncryptedDecimalField

    field = EncryptedDecimalField()
    field.name = "amount"
    for value in [decimal.Decimal("0"), decimal.Decimal("-12.3400"), decimal.Decimal("1E+30")]:
        assert field.from_bytes(field.to_bytes(value)) == value
        assert str(field.from_bytes(field.to_bytes(value))) == str(value)
    with pytest.raises(TypeError):
        field.to_bytes(1.5)
    with pytest.raises(ValueError):
        field.to_bytes(decimal.Decimal("NaN"))


def test_wrong_python_type_is_refused_before_anything_is_written():
    from cdp.crypto.models import SubjectKey

    with pytest.raises(TypeError), transaction.atomic():
        Customer.objects.create(email=123)
    with pytest.raises(TypeError), transaction.atomic():
        Customer.objects.create(birth_date=datetime.datetime(2000, 1, 1))
    assert Customer.objects.count() == 0
    assert SubjectKey.objects.count() == 0


def test_flipped_bit_raises_decryption_error():
    customer = Customer.objects.create(email="jane@example.com")
    blob = bytearray(raw_column("profiles_customer", "email", customer.pk))
    blob[-1] ^= 0x01
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE profiles_customer SET email = %s WHERE id = %s", [bytes(blob), customer.pk]
        )
    with pytest.raises(DecryptionError) as excinfo:
        reload(customer).email
    assert "jane" not in str(excinfo.value)


def test_truncated_ciphertext_raises_decryption_error():
    customer = Customer.objects.create(email="jane@example.com")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE profiles_customer SET email = substring(email from 1 for 10) WHERE id = %s",
            [customer.pk],
        )
    with pytest.raises(DecryptionError, match="truncated"):
        reload(customer).email


def test_ciphertext_copied_to_another_customer_fails():
    alice = Customer.objects.create(email="alice@example.com")
    bob = Customer.objects.create(email="bob@example.com")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE profiles_customer SET email = "
            "(SELECT email FROM profiles_customer WHERE id = %s) WHERE id = %s",
            [alice.pk, bob.pk],
        )
    with pytest.raises(DecryptionError):
        reload(bob).email
    assert reload(alice).email == "alice@example.com"


def test_ciphertext_copied_to_another_column_of_the_same_row_fails():
    customer = Customer.objects.create(email="jane@example.com", first_name="Jane")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE profiles_customer SET first_name = email WHERE id = %s", [customer.pk]
        )
    with pytest.raises(DecryptionError):
        reload(customer).first_name


def test_ciphertext_copied_to_another_row_of_the_same_subject_fails():
    customer = Customer.objects.create()
    one = Identity.objects.create(
        customer=customer, kind=IdentityKind.USER_ID, value="u-1", value_index=b"1"
    )
    two = Identity.objects.create(
        customer=customer, kind=IdentityKind.USER_ID, value="u-2", value_index=b"2"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE profiles_identity SET value = "
            "(SELECT value FROM profiles_identity WHERE id = %s) WHERE id = %s",
            [one.pk, two.pk],
        )
    with pytest.raises(DecryptionError):
        Identity.objects.get(pk=two.pk).value


def test_wrong_key_encryption_key_raises_decryption_error(settings):
    customer = Customer.objects.create(email="jane@example.com")
    primary_id = settings.CDP_KEKS[0][0]
    settings.CDP_KEKS = [(primary_id, b"\x07" * 32)]
    cache_clear()
    with pytest.raises(DecryptionError):
        reload(customer).email


def test_filters_and_bulk_writes_on_encrypted_values_are_refused():
    Customer.objects.create(email="jane@example.com")
    with pytest.raises(FieldError):
        Customer.objects.filter(email="jane@example.com").count()
    with pytest.raises(EncryptionContextError), transaction.atomic():
        Customer.objects.update(email="someone@example.com")
    customer = Customer.objects.get()
    customer.email = "other@example.com"
    with pytest.raises(EncryptionContextError), transaction.atomic():
        Customer.objects.bulk_update([customer], ["email"])
    assert reload(customer).email == "jane@example.com"


def test_bulk_create_encrypts_each_row_for_its_subject():
    customers = Customer.objects.bulk_create(
        [Customer(email=f"c{i}@example.com") for i in range(5)]
    )
    for i, customer in enumerate(customers):
        assert reload(customer).email == f"c{i}@example.com"


def test_unread_values_are_saved_back_unchanged():
    customer = Customer.objects.create(email="jane@example.com", country="FR")
    loaded = reload(customer)
    before = bytes(raw_column("profiles_customer", "email", customer.pk))
    loaded.country = "DE"
    loaded.save()
    assert isinstance(Customer.objects.get(pk=customer.pk).__dict__["email"], Sealed)
    assert bytes(raw_column("profiles_customer", "email", customer.pk)) == before
    assert reload(customer).email == "jane@example.com"


def test_changed_value_is_re_encrypted_with_a_fresh_nonce():
    customer = Customer.objects.create(email="jane@example.com")
    first = bytes(raw_column("profiles_customer", "email", customer.pk))
    customer.save()
    second = bytes(raw_column("profiles_customer", "email", customer.pk))
    assert first != second
    assert reload(customer).email == "jane@example.com"


def test_deferred_encrypted_field_loads_and_decrypts_on_access():
    customer = Customer.objects.create(email="jane@example.com")
    loaded = Customer.objects.defer("email").get(pk=customer.pk)
    assert loaded.email == "jane@example.com"


def test_shredded_key_makes_every_value_unreadable():
    from cdp.crypto.subject_keys import subject_key_shred

    customer = Customer.objects.create(email="jane@example.com", first_name="Jane")
    Identity.objects.create(
        customer=customer, kind=IdentityKind.USER_ID, value="u-1", value_index=b"1"
    )
    assert subject_key_shred(customer.pk) is True
    with pytest.raises(KeyDestroyedError):
        reload(customer).email
    with pytest.raises(KeyDestroyedError):
        Identity.objects.get(customer=customer).value


def test_values_sealed_under_a_shredded_key_stay_unreadable_after_a_new_key():
    from cdp.crypto.subject_keys import subject_key_get_or_create, subject_key_shred

    customer = Customer.objects.create(email="jane@example.com")
    subject_key_shred(customer.pk)
    subject_key_get_or_create(customer.pk)
    with pytest.raises(KeyDestroyedError):
        reload(customer).email


def test_shredding_twice_reports_no_key_the_second_time():
    from cdp.crypto.subject_keys import subject_key_shred

    customer = Customer.objects.create(email="jane@example.com")
    assert subject_key_shred(customer.pk) is True
    assert subject_key_shred(customer.pk) is False
