"""A segment in a real browser, as an analyst: the size chart renders and the preview counts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from cdp.profiles.roles import ANALYST


@pytest.fixture(autouse=True)
def ledger_emptied(transactional_db: None) -> Iterator[None]:
    """The consent ledger is append-only: empty it (test databases only) before the flush."""
    yield
    from consent.testing import consent_ledger_clear_for_tests

    consent_ledger_clear_for_tests()


def gold_segment_with_history() -> Any:
    from consent.models import Purpose
    from consent.services import purpose_create
    from segmentation.segments.models import Segment
    from segmentation.segments.services import segment_refresh, segment_save
    from tests.segmentation.segments.conftest import customer, grant

    if not Purpose.objects.filter(code="marketing").exists():
        purpose_create(
            code="marketing",
            title="Marketing",
            notice_text="We send you offers.",
            covers=["marketing"],
            actor="system",
        )
    members = [customer(attributes={"plan": "gold"}) for _ in range(4)]
    grant(members[:2])
    segment = segment_save(
        segment=Segment(
            name="Gold plan",
            purpose_id="marketing",
            condition={"field": "trait.plan", "op": "eq", "value": "gold"},
        ),
        actor="test",
    )
    segment_refresh(segment_id=segment.pk)
    grant(members[2:])
    segment_refresh(segment_id=segment.pk)
    return segment


def test_analyst_opens_a_segment_and_sees_its_size_chart(
    page: Page, login_as: Callable[[str], Any], artifacts_dir: Path
) -> None:
    gold_segment_with_history()
    login_as(ANALYST)

    page.locator("#segments-segment").get_by_role("link", name="Segments").click()
    page.get_by_role("link", name="Gold plan").click()

    chart = page.locator("svg.segment-size-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("polyline")).to_have_count(1)
    expect(chart.locator("circle")).to_have_count(2)  # one point per refresh
    box = chart.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    expect(chart.locator("text").first).to_have_text("4")  # the top of the axis: 4 members

    page.get_by_role("button", name="Preview count").click()
    expect(page.locator("#segment-preview-result")).to_have_text("4 customers would be members now")
    page.locator("textarea[name=condition]").fill('{"field": "nope"}')
    page.get_by_role("button", name="Preview count").click()
    expect(page.locator("#segment-preview-errors li").first).to_have_text(
        "field: unknown field 'nope'"
    )
    page.screenshot(path=artifacts_dir / "segment-change.png", full_page=True)

    page.get_by_role("button", name="Refresh now").click()
    expect(page.locator("ul.messagelist")).to_contain_text("Gold plan: 4 members (+0 / -0)")
    expect(page.locator("svg.segment-size-chart circle")).to_have_count(3)
