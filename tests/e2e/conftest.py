"""Real-browser tests of the admin: Playwright (sync API) driving Debian's Chromium against
pytest-django's `live_server`.

Chromium comes from the system (`apt-get install chromium`, which CI's `.ci/run` does), never from
`playwright install`. Without it these tests fail with a message saying so; `CDP_E2E=skip` skips
them instead. `CDP_E2E_CHROMIUM` points at another Chromium binary (default `/usr/bin/chromium`).

Every test gets a fresh browser context (no cookies shared) and a transactional database
(`live_server` serves from another thread, which sees only committed rows). The flush after each
test also empties the role groups that migrations seed, so `login_as` recreates the one it needs.
Screenshots of failing tests go to `var/e2e/failures/`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError

BASE_DIR = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = BASE_DIR / "var" / "e2e"
CHROMIUM = os.environ.get("CDP_E2E_CHROMIUM", "/usr/bin/chromium")
# The background-networking flags matter: without them Chromium keeps dialling out (updates,
# field trials, sync), and where there is no internet those connections are refused over and over.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000
PASSWORD = "e2e-correct-horse-battery-staple"

expect.set_options(timeout=TIMEOUT_MS)


def _chromium_or_fail() -> str:
    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    message = (
        f"Chromium not found at {CHROMIUM}. Install it with `apt-get install chromium` "
        "(CI does), point CDP_E2E_CHROMIUM at one, or set CDP_E2E=skip to skip the e2e tests."
    )
    if os.environ.get("CDP_E2E") == "skip":
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="package")
def playwright_instance() -> Iterator[Playwright]:
    """Playwright, for as long as this package's tests run.

    Playwright's sync API keeps an asyncio loop marked as running in this (the test) thread, and
    Django refuses ORM calls from a thread with a running loop (SynchronousOnlyOperation). The
    tests use the ORM there (creating users, reading the audit log, the flush), not from async
    code, so the check is off exactly while the loop exists. Package scope keeps the loop from
    outliving these tests, so the rest of the suite, in the same xdist worker, keeps the check.
    """
    saved = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            yield playwright
    finally:
        if saved is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = saved


@pytest.fixture(scope="package")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    """One headless Chromium per xdist worker (and per run of this package)."""
    executable = _chromium_or_fail()
    browser = playwright_instance.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember each phase's report on the item, so `page` can tell that its test failed."""
    report = yield
    setattr(item, f"e2e_report_{report.when}", report)
    return report


@pytest.fixture
def page(browser: Browser, live_server: Any, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a fresh context whose relative URLs go to the live server."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1440, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    report = getattr(request.node, "e2e_report_call", None)
    if report is not None and report.failed:
        failures = ARTIFACTS_DIR / "failures"
        failures.mkdir(parents=True, exist_ok=True)
        name = request.node.nodeid.split("::")[-1].replace("/", "_")
        with contextlib.suppress(PlaywrightError):  # a crashed page must not hide the failure
            page.screenshot(path=failures / f"{name}.png", full_page=True)
    context.close()


@pytest.fixture
def artifacts_dir() -> Path:
    """`var/e2e/` (git-ignored): screenshots for a human to look at."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR


def ensure_role_group(role: str) -> Any:
    """The role group with the permissions `cdp.profiles.roles` grants it.

    Migrations seed these groups, but each transactional test's flush deletes them. This mirrors
    `sync_role_groups` over the live models (that function is for migrations' historical apps).
    """
    from django.contrib.auth.models import Group, Permission

    from cdp.profiles.roles import ROLE_PERMISSIONS

    group, _ = Group.objects.get_or_create(name=role)
    for grant in ROLE_PERMISSIONS[role]:
        app_label, codename = grant.split(".", 1)
        perms = Permission.objects.filter(content_type__app_label=app_label)
        if codename != "*":
            perms = perms.filter(codename=codename)
        group.permissions.add(*perms)
    return group


@pytest.fixture
def login_as(page: Page, django_user_model: Any) -> Callable[[str], Any]:
    """Create a staff user in a role group and log in through the admin's login form.

    Returns the user; the page is left on the admin index.
    """

    def login(role: str) -> Any:
        username = role.lower().replace(" ", "-")
        user = django_user_model.objects.create_user(
            username=username, password=PASSWORD, is_staff=True
        )
        user.groups.add(ensure_role_group(role))
        page.goto("/admin/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
        return user

    return login
