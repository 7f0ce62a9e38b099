"""The import admin in a real browser: upload, masked mapping preview, live progress bar."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from playwright.sync_api import Page, expect

from cdp.ingest.imports.services import import_job_run
from cdp.ingest.models import ImportJob
from cdp.profiles.roles import CONSENT_ADMIN
from tests.ingest.imports.helpers import pace_chunks

ROWS = 6_000


def people_csv(path: Path) -> Path:
    lines = ["Customer No,E-mail,First Name,Country"]
    lines += [f"{i},person{i}@shop.example,Janet{i},France" for i in range(ROWS)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_upload_map_and_watch_the_progress_bar_without_reloading(
    page: Page,
    login_as: Callable[[str], Any],
    tmp_path: Path,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.CDP_IMPORT_CHUNK_ROWS = 250
    # The importer finishes 6,000 rows within one of the page's one-second polls: each chunk is
    # paced here (24 chunks, ~5 s), so the page must show the numbers moving while it runs.
    pace_chunks(monkeypatch, 0.2)
    login_as(CONSENT_ADMIN)

    page.goto("/admin/ingest/importjob/add/")
    page.get_by_label("File").set_input_files(people_csv(tmp_path / "people.csv"))
    page.get_by_label("Source").fill("crm")
    page.get_by_label("Kind").select_option("profiles")
    page.get_by_role("button", name="Upload and map the columns").click()

    expect(page.get_by_role("heading", name="Map the columns")).to_be_visible()
    expect(page.locator("select[data-header='E-mail']")).to_have_value("email")
    expect(page.locator("td.preview").first).to_be_visible()
    content = page.content()
    assert "p***@shop.example" in content and "J***" in content
    assert "person0@shop.example" not in content and "Janet0" not in content
    page.locator("select[data-header='Country']").select_option("ignore")
    page.get_by_role("button", name="Start the import").click()

    expect(page).to_have_url(re.compile(r"/progress/$"))
    # Record what the page shows while it polls: no reload, numbers moving in place.
    page.evaluate(
        """() => {
            window.notReloaded = true;
            window.seen = [];
            const cell = document.getElementById("rows_done");
            new MutationObserver(() => window.seen.push(cell.textContent)).observe(
                cell, {childList: true, characterData: true, subtree: true});
        }"""
    )
    job = ImportJob.objects.get()
    assert job.mapping["Country"] == "ignore"
    # The worker of this test session (if one runs) or this thread runs the job; two runs of a
    # job are safe (each chunk checks the committed position under a row lock).
    worker = threading.Thread(target=_run, args=(job.pk,))
    worker.start()
    try:
        expect(page.locator("#status")).to_have_text("completed", timeout=180_000)
    finally:
        worker.join()
    seen = page.evaluate("window.seen")
    assert len(set(seen)) >= 2, seen  # at least one intermediate value, then the end
    expect(page.locator("#rows_done")).to_have_text(str(ROWS))
    expect(page.locator("#count-created")).to_have_text(str(ROWS))
    expect(page.locator("#percent")).to_have_text("100 %")
    assert page.evaluate("window.notReloaded") is True
    with page.expect_download() as download:
        page.locator("#errors-link").click()
    assert Path(download.value.path()).read_bytes() == b"row,column,code,reason\r\n"


def _run(job_id: Any) -> None:
    try:
        import_job_run(job_id=job_id, actor="test")
    finally:
        connection.close()
