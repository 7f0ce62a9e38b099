"""Segmentation charts in a real browser: an analyst opens a clustering run and the insights page
and the SVG charts render (drawn, sized, with their marks), with no customer id on the page."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from cdp.profiles.roles import ANALYST
from tests.segmentation.online_retail import DATA, clustered_run

pytestmark = pytest.mark.skipif(not DATA.exists(), reason="Online Retail data not present")


@pytest.fixture
def ledger_emptied_after(transactional_db: None) -> Iterator[None]:
    """The run's consent grants go to the append-only ledger: empty it before the flush."""
    from consent.testing import consent_ledger_clear_for_tests

    yield
    consent_ledger_clear_for_tests()


def drawn(page: Page, selector: str) -> dict[str, float]:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not laid out"
    return box


def test_analyst_sees_cluster_charts_and_insights(
    ledger_emptied_after: None,
    page: Page,
    login_as: Callable[[str], Any],
    artifacts_dir: Path,
) -> None:
    run = clustered_run(modulo=40, k=3)
    customer_ids = [str(c) for c in run.assignments.values_list("customer_id", flat=True)]
    login_as(ANALYST)

    page.get_by_role("link", name="Clustering runs").click()
    page.get_by_role("link", name="retail").click()

    expect(page.locator("#pca-scatter")).to_be_visible()
    assert page.locator("#pca-scatter circle.pt").count() == run.population
    assert drawn(page, "#pca-scatter")["width"] > 300
    expect(page.locator("#persona-profiles")).to_be_visible()
    assert page.locator("#persona-profiles .persona-name").count() == run.k
    assert page.locator("#persona-profiles rect.bar").count() > 0
    expect(page.locator("#run-metrics")).to_contain_text("Silhouette")
    expect(page.locator("#pca-scatter .legend").first).to_be_visible()
    page.screenshot(path=artifacts_dir / "segmentation-run.png", full_page=True)
    content = page.content()
    assert not [c for c in customer_ids if c in content]

    page.goto("/admin/segmentation/featurerun/")
    page.get_by_role("link", name="RFM grid and cohorts").click()

    expect(page.locator("#rfm-heatmap")).to_be_visible()
    assert page.locator("#rfm-heatmap rect.cell").count() == 25
    assert drawn(page, "#rfm-heatmap")["height"] > 300
    expect(page.locator("#cohort-retention")).to_be_visible()
    assert page.locator("#cohort-retention rect.cell").count() > 10
    expect(page.locator("#rfm-segments")).to_contain_text("Champions")
    page.screenshot(path=artifacts_dir / "segmentation-insights.png", full_page=True)
