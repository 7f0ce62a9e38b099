"""Personalization and recipients in a real browser.

An analyst opens a trained model run (metrics, importances, the drift chart drawn with one bar per
variable), a drift report's distribution chart and an experiment's results, and no page carries a
customer id. A compliance officer registers a recipient with a webhook and sees its signing
secret once, then finds the notice of an erasure in the notices list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from cdp.profiles.roles import ANALYST, COMPLIANCE_OFFICER


@pytest.fixture
def ledger_emptied_after(transactional_db: None) -> Iterator[None]:
    """Consent grants and audit entries go to append-only tables: empty them before the flush."""
    from consent.testing import consent_ledger_clear_for_tests

    yield
    consent_ledger_clear_for_tests()


def _purposes() -> None:
    from consent.models import Purpose
    from consent.services import purpose_create

    for code in ("analytics", "profiling", "marketing", "personalization", "sale_sharing"):
        if not Purpose.objects.filter(code=code).exists():
            purpose_create(
                code=code, title=code.title(), notice_text=f"{code}.", covers=[code], actor="t"
            )


def _trained_runs() -> tuple[list[Any], list[str]]:
    """Two propensity runs over 24 consented customers with purchase histories."""
    from cdp.ingest.services import source_create
    from segmentation.personalization.services import model_run_create, model_run_execute
    from tests.segmentation.personalization.conftest import AS_OF, history
    from tests.segmentation.segments.conftest import customer, grant

    _purposes()
    source = source_create(name="e2e-shop", actor="t")
    people = [customer() for _ in range(24)]
    for i, who in enumerate(people):
        history(source, who, loyal=i % 2 == 0, index=i)
    grant(people, "profiling")
    grant(people, "personalization")
    runs = []
    for _ in range(2):
        run = model_run_create(
            kind="propensity", actor="t", params={"as_of": AS_OF.isoformat()}, enqueue=False
        )
        runs.append(model_run_execute(run_id=run.pk))
    return runs, [str(p.pk) for p in people]


def test_analyst_reads_model_runs_drift_and_experiments(
    ledger_emptied_after: None,
    page: Page,
    login_as: Callable[[str], Any],
    artifacts_dir: Path,
) -> None:
    from segmentation.personalization.models import DriftReport, Experiment

    (_, second), customer_ids = _trained_runs()
    experiment = Experiment.objects.create(key="winback", name="Winback offer", target="decision")
    experiment.variants.create(name="control")
    experiment.variants.create(name="offer")
    variables = DriftReport.objects.filter(run=second).count()
    assert variables > 0
    login_as(ANALYST)

    page.goto(f"/admin/personalization/modelrun/{second.pk}/change/")
    chart = page.locator("svg.drift-chart")
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 300
    assert chart.locator("rect").count() >= variables
    expect(page.get_by_text("roc_auc").first).to_be_visible()
    expect(page.get_by_text("recency_days").first).to_be_visible()
    page.screenshot(path=artifacts_dir / "personalization-run.png", full_page=True)
    content = page.content()
    assert not [c for c in customer_ids if c in content]

    page.goto("/admin/personalization/driftreport/")
    row = page.locator("#result_list tbody tr").filter(has_text="recency_days").first
    row.get_by_role("link").first.click()
    expect(page.locator("svg").first).to_be_visible()
    expect(page.get_by_text("recency_days: previous vs current").first).to_be_attached()

    page.goto("/admin/personalization/experiment/")
    page.get_by_role("link", name="Winback offer").click()
    expect(page.get_by_text("Sample ratio check")).to_be_visible()
    expect(page.get_by_text("uplift vs control")).to_be_visible()
    content = page.content()
    assert not [c for c in customer_ids if c in content]


def test_officer_registers_a_recipient_and_sees_the_notice_of_an_erasure(
    ledger_emptied_after: None,
    page: Page,
    login_as: Callable[[str], Any],
) -> None:
    from cdp.privacy.recipient_models import Recipient, RecipientNotice
    from cdp.privacy.services import dsr_create, dsr_execute, dsr_verify
    from tests.profiles.factories import make_customer

    _purposes()
    login_as(COMPLIANCE_OFFICER)

    page.goto("/admin/privacy/recipient/add/")
    page.get_by_label("Name").fill("Mailer Ltd")
    page.get_by_label("Kind").select_option("processor")
    page.get_by_label("Notify url").fill("https://mailer.example/cdp-notices")
    page.get_by_role("button", name="Save", exact=True).click()
    warning = page.locator(".messagelist .warning")
    expect(warning).to_contain_text("Signing secret (shown once")
    expect(warning).to_contain_text("whsec_")
    recipient = Recipient.objects.get(name="Mailer Ltd")
    assert recipient.notify_on == ["erasure", "rectification", "restriction"]

    page.goto(f"/admin/privacy/recipient/{recipient.pk}/change/")
    expect(page.get_by_text("whsec_")).to_have_count(0)  # shown once, never again

    customer = make_customer(email="notice-me@example.com")
    request = dsr_create(
        type="erasure", subject_kind="email", subject_value="notice-me@example.com", actor="t"
    )
    dsr_verify(request=request, method="document", actor="t")
    dsr_execute(request_id=request.pk)
    assert RecipientNotice.objects.filter(request=request).count() == 1

    page.goto("/admin/privacy/recipientnotice/")
    row = page.locator("#result_list tbody tr").first
    expect(row).to_contain_text("Mailer Ltd")
    expect(row).to_contain_text("erasure")
    assert "notice-me@example.com" not in page.content()
    assert str(customer.pk) not in page.content()  # ids only on the detail page
