"""Browser tests: Playwright drives Debian's chromium against pytest-django's live server
(a real HTTP server on the test database). Every test saves screenshots of the pages it saw
under `.state/screenshots/` (BROWSER_SCREENSHOT_DIR overrides)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.attribution.conftest import emptied_log_after  # noqa: F401
from tests.generation.conftest import (  # noqa: F401  (a tiny generator and a real worker)
    embedded_catalogue,
    generation_worker,
    pricing,
    studio,
    tiny_checkpoint,
)

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# between browser steps are still synchronous, so Django's async guard would only get in the way.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "pw-for-tests"  # what tests/conftest.py's make_user gives every user


@pytest.fixture(autouse=True)
def _empty_attribution_log(emptied_log_after):  # noqa: F811
    """Browser tests commit (a live server needs it) and verification writes to the
    append-only log, which Django's flush between tests may not truncate."""
    yield


def screenshot_dir() -> Path:
    return Path(os.environ.get("BROWSER_SCREENSHOT_DIR", settings.STATE_DIR / "screenshots"))


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail("Debian's chromium is missing: apt-get install chromium chromium-driver")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        yield browser
        browser.close()


class Shots:
    """Full-page screenshots named after the test, numbered in the order they were taken."""

    def __init__(self, test_name: str) -> None:
        self.directory = screenshot_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prefix = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")
        self.count = 0
        for old in self.directory.glob(f"{self.prefix}-*.png"):
            old.unlink()  # an earlier run's pictures would mix with this run's

    def __call__(self, page, label: str) -> Path:
        self.count += 1
        path = self.directory / f"{self.prefix}-{self.count:02d}-{label}.png"
        # The whole page, by growing the viewport and shrinking it back: chromium's own
        # full-page capture left its layout such that the next click missed its target.
        size = page.viewport_size
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": size["width"], "height": max(height, size["height"])})
        page.screenshot(path=str(path))
        page.set_viewport_size(size)
        return path


@pytest.fixture
def shots(request) -> Shots:
    return Shots(request.node.name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can see whether it failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def open_session(browser, live_server, request, shots) -> Iterator:
    """`open_session(user)` gives a new browser context signed in as `user` (through the
    sign-in page, as a person would), its page pointed at the live server."""
    contexts = []

    def open_(user):
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": 1280, "height": 900}
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(user.get_username())
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r".*/$"))
        return page

    yield open_
    failed = getattr(request.node, "report_call", None)
    for context in contexts:
        if failed is not None and failed.failed:
            for page in context.pages:
                shots(page, "at-failure")
        context.close()
