"""Sign-in through the real browser, and every page's skeleton answers."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_in_and_navigation(open_session, make_user, shots):
    page = open_session(make_user("maker"))
    shots(page, "home")
    assert page.get_by_role("button", name="Sign out maker").is_visible()
    page.get_by_role("link", name="Studio", exact=True).first.click()
    assert page.url.endswith("/studio/")
