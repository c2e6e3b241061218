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

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# between browser steps are still synchronous, so Django's async guard would only get in the way.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "pw-for-tests"  # what tests/conftest.py's make_user gives every user


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

    def __call__(self, page, label: str) -> Path:
        self.count += 1
        path = self.directory / f"{self.prefix}-{self.count:02d}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def shots(request) -> Shots:
    return Shots(request.node.name)


@pytest.fixture
def open_session(browser, live_server) -> Iterator:
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
    for context in contexts:
        context.close()
