"""The customer admin: masked values only, an audited reveal, and an authorization matrix."""

import pytest

from cdp.audit.models import AuditEntry
from cdp.profiles.roles import ANALYST, COMPLIANCE_OFFICER, CONSENT_ADMIN, PLATFORM_ADMIN
from tests.roles import client_for

from .factories import make_customer

pytestmark = pytest.mark.django_db

EMAIL = "jane.doe@example.com"
PHONE = "+442079460958"


@pytest.fixture
def customer():
    return make_customer(email=EMAIL, phone=PHONE, first_name="Janet", last_name="Doe-Smith")


def assert_no_plaintext(content: bytes):
    text = content.decode()
    for secret in (EMAIL, PHONE, "Janet", "Doe-Smith", "7946"):
        assert secret not in text, secret


@pytest.mark.parametrize(
    ("role", "status"),
    [
        (PLATFORM_ADMIN, 200),
        (CONSENT_ADMIN, 200),
        (COMPLIANCE_OFFICER, 200),
        (ANALYST, 403),
        (None, 302),
    ],
)
def test_customer_list_access_per_role(django_user_model, customer, role, status):
    response = client_for(django_user_model, role).get("/admin/profiles/customer/")
    assert response.status_code == status
    if status == 200:
        assert "j***@example.com" in response.content.decode()
        assert_no_plaintext(response.content)
    if status == 302:
        assert response["Location"].startswith("/admin/login/")


def test_customer_page_shows_masked_values_only(django_user_model, customer):
    client = client_for(django_user_model, COMPLIANCE_OFFICER)
    response = client.get(f"/admin/profiles/customer/{customer.pk}/change/")
    assert response.status_code == 200
    assert "j***@example.com" in response.content.decode()
    assert "+44********58" in response.content.decode()
    assert_no_plaintext(response.content)


@pytest.mark.parametrize(
    ("role", "status"),
    [
        (PLATFORM_ADMIN, 200),
        (COMPLIANCE_OFFICER, 200),
        (CONSENT_ADMIN, 403),
        (ANALYST, 403),
        (None, 302),
    ],
)
def test_reveal_needs_the_reveal_permission(django_user_model, customer, role, status):
    client = client_for(django_user_model, role)
    response = client.post(f"/admin/profiles/customer/{customer.pk}/reveal/", {"reason": "DSR 12"})
    assert response.status_code == status
    revealed = AuditEntry.objects.filter(action="customer.reveal").count()
    if status == 200:
        assert EMAIL in response.content.decode()
        assert "Janet" in response.content.decode()
        assert revealed == 1
    else:
        assert_no_plaintext(response.content)
        assert revealed == 0


def test_reveal_without_a_reason_reveals_nothing(django_user_model, customer):
    client = client_for(django_user_model, COMPLIANCE_OFFICER)
    response = client.post(f"/admin/profiles/customer/{customer.pk}/reveal/", {"reason": " "})
    assert response.status_code == 302
    assert not AuditEntry.objects.filter(action="customer.reveal").exists()


def test_reveal_get_asks_for_a_reason_and_shows_nothing(django_user_model, customer):
    client = client_for(django_user_model, COMPLIANCE_OFFICER)
    response = client.get(f"/admin/profiles/customer/{customer.pk}/reveal/")
    assert response.status_code == 200
    assert 'name="reason"' in response.content.decode()
    assert_no_plaintext(response.content)


def test_search_by_exact_email_without_decryption(django_user_model, customer):
    make_customer(email="someone.else@example.com")
    client = client_for(django_user_model, CONSENT_ADMIN)
    response = client.get("/admin/profiles/customer/", {"q": "JANE.DOE@example.com"})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1
    assert list(response.context["cl"].result_list) == [customer]


def test_customers_cannot_be_added_or_deleted_in_the_admin(django_user_model, customer):
    client = client_for(django_user_model, PLATFORM_ADMIN)
    assert client.get("/admin/profiles/customer/add/").status_code == 403
    assert client.get(f"/admin/profiles/customer/{customer.pk}/delete/").status_code == 403


def test_list_page_loads_data_keys_in_one_query(django_user_model, django_assert_max_num_queries):
    from cdp.crypto.subject_keys import cache_clear

    for _ in range(30):
        make_customer()
    client = client_for(django_user_model, CONSENT_ADMIN)
    cache_clear()
    with django_assert_max_num_queries(12):
        response = client.get("/admin/profiles/customer/")
    assert response.status_code == 200
