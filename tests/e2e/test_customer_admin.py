"""The customer admin in a real browser: masked values per role, and the audited reveal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from cdp.audit.models import AuditEntry
from cdp.profiles.roles import ANALYST, COMPLIANCE_OFFICER, CONSENT_ADMIN
from tests.profiles.factories import make_customer

EMAIL = "jane.doe@example.com"
PHONE = "+442079460958"
FIRST_NAME = "Janet"
LAST_NAME = "Doe-Smith"
MASKED_EMAIL = "j***@example.com"
MASKED_PHONE = "+44********58"
# The phone's national digits too: no formatting of the number may leak it.
PLAINTEXT = (EMAIL, PHONE, "2079460958", FIRST_NAME, LAST_NAME)


def jane() -> Any:
    return make_customer(email=EMAIL, phone=PHONE, first_name=FIRST_NAME, last_name=LAST_NAME)


def assert_no_plaintext(page: Page, *others: str) -> None:
    """Nothing personal anywhere in the DOM: text, attributes, hidden inputs, scripts."""
    content = page.content()
    leaked = [value for value in (*PLAINTEXT, *others) if value in content]
    assert leaked == [], f"plaintext on {page.url}: {leaked}"


def open_customer_list(page: Page) -> None:
    """From the admin index, follow the Customers link."""
    page.get_by_role("link", name="Customers", exact=True).click()
    expect(page.get_by_role("heading", name="Select customer to view")).to_be_visible()


def test_compliance_officer_sees_masked_list_and_reveals_with_a_reason(
    page: Page, login_as: Callable[[str], Any]
) -> None:
    customer = jane()
    officer = login_as(COMPLIANCE_OFFICER)

    open_customer_list(page)
    expect(page.get_by_role("cell", name=MASKED_EMAIL, exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name=MASKED_PHONE, exact=True)).to_be_visible()
    assert_no_plaintext(page)

    page.get_by_role("link", name=str(customer.pk)[:8], exact=True).click()
    # The customer's e-mail field and its e-mail identity in the inline.
    expect(page.get_by_text(MASKED_EMAIL, exact=True)).to_have_count(2)
    assert_no_plaintext(page)
    assert not AuditEntry.objects.filter(action="customer.reveal").exists()

    page.get_by_role("link", name="Reveal (audited)", exact=True).click()
    expect(page).to_have_url(f"/admin/profiles/customer/{customer.pk}/reveal/")
    assert_no_plaintext(page)
    page.get_by_label("Reason").fill("DSR-2291: subject access request")
    page.get_by_role("button", name="Reveal personal data").click()

    expect(page.get_by_role("cell", name=EMAIL, exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name=PHONE, exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name=FIRST_NAME, exact=True)).to_be_visible()
    entries = list(AuditEntry.objects.filter(action="customer.reveal"))
    assert [(e.actor, e.object_type, e.object_id) for e in entries] == [
        (f"user:{officer.pk}", "profiles.customer", str(customer.pk))
    ]
    assert entries[0].details["reason_given"] is True


def test_consent_admin_sees_masked_list_but_reveal_is_forbidden(
    page: Page, login_as: Callable[[str], Any]
) -> None:
    customer = jane()
    login_as(CONSENT_ADMIN)

    open_customer_list(page)
    expect(page.get_by_role("cell", name=MASKED_EMAIL, exact=True)).to_be_visible()
    assert_no_plaintext(page)

    response = page.goto(f"/admin/profiles/customer/{customer.pk}/reveal/")
    assert response is not None
    assert response.status == 403
    expect(page.get_by_label("Reason")).to_have_count(0)
    assert_no_plaintext(page)
    assert not AuditEntry.objects.filter(action="customer.reveal").exists()


def test_analyst_has_no_customers_link_and_the_list_is_forbidden(
    page: Page, login_as: Callable[[str], Any]
) -> None:
    jane()
    login_as(ANALYST)

    expect(page.get_by_role("link", name="Customers", exact=True)).to_have_count(0)
    response = page.goto("/admin/profiles/customer/")
    assert response is not None
    assert response.status == 403
    assert_no_plaintext(page)


def test_masked_customer_list_screenshot_for_review(
    page: Page, login_as: Callable[[str], Any], artifacts_dir: Path
) -> None:
    """Leaves var/e2e/customer-list-masked.png for a human to look at."""
    others = [
        {"email": "max.mustermann@example.de", "phone": "+4915112345678", "country": "DE"},
        {"email": "ana.lopez@example.com", "phone": "+12025550143", "country": "US"},
    ]
    jane()
    for values in others:
        make_customer(first_name="Maximilian", last_name="Mustermann-Lopez", **values)
    login_as(COMPLIANCE_OFFICER)
    open_customer_list(page)
    expect(page.get_by_text("3 customers", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="m***@example.de", exact=True)).to_be_visible()
    assert_no_plaintext(
        page, *(v for c in others for v in (c["email"], c["phone"])), "Maximilian", "Mustermann"
    )

    path = artifacts_dir / "customer-list-masked.png"
    page.screenshot(path=path, full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
