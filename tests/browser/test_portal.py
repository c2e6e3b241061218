"""Browser tests of the rights-holder portal (Playwright on Debian's chromium, live server):

(1) a holder revokes song-level inference for a recording through the portal (confirmation,
    new state, history) and the music maker can then no longer pick it for that use;
(3) after a real generation that referenced a recording, its holder sees the payout with the
    direct / TDA / auxiliary split, the charts, and downloads the CSV.

Screenshots of every page go to `.state/screenshots/` (see conftest.py).
"""

from __future__ import annotations

import csv
import io
import re
import time

import pytest
from django.utils import timezone

from catalog.selectors import consent_current
from generation.models import GenerationRequest
from royalties.selectors import holder_period_totals
from royalties.services import tda_pool_settle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def api_post(page, url: str, body: dict):
    """POST JSON as the signed-in browser session (cookies and CSRF token of that session)."""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    return page.request.post(url, data=body, headers={"X-CSRFToken": token})


def test_holder_revokes_a_use_and_the_maker_can_no_longer_pick_it(
    studio, open_session, make_user, shots, emptied_log_after
):
    holder, member = studio["holder"], studio["member"]
    kept, revoked = studio["recordings"][4], studio["recordings"][5]
    maker = open_session(make_user("maker"))

    def verdict(recording) -> dict:
        response = api_post(
            maker,
            "/api/generations/verify/",
            {"references": [{"recording": recording.pk, "level": "song"}],
             "distribution": "private"},
        )  # fmt: skip
        assert response.ok, response.text()
        return response.json()

    def searchable(recording, use: str) -> bool:
        found = maker.request.get(
            "/api/catalogue/search/", params={"q": recording.title, "use": use}
        )
        assert found.ok, found.text()
        return recording.pk in [hit["id"] for hit in found.json()["results"]]

    assert verdict(revoked)["permitted"] is True  # before: the maker may pick it
    assert searchable(revoked, "song_inference")

    page = open_session(member)
    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Rights-holder portal"
    ).click()
    shots(page, "portal-home")
    page.get_by_role("link", name=f"Recordings and consent of {holder.name}").click()
    card = page.get_by_role("region", name=revoked.title, exact=True)
    expect_text(card, "Effective: you hold all the rights")
    shots(page, "recordings")

    song_level = card.get_by_role("checkbox", name="Song-level inference")
    assert song_level.is_checked()
    song_level.focus()
    page.keyboard.press("Space")  # keyboard use: untick it
    assert not song_level.is_checked()
    card.get_by_label("Note (optional)").fill("no song-level covers")
    card.get_by_role("button", name=f"Save consent for {revoked.title}").click()

    # the confirmation page lists exactly what is revoked and what it means; nothing yet
    page.wait_for_url(re.compile(r".*/consent/$"))
    assert page.get_by_role("heading", name="Confirm revocation").is_visible()
    listed = page.get_by_role("region", name="What will be revoked")
    assert listed.get_by_role("listitem").count() == 1
    expect_text(listed, "Song-level inference")
    expect_text(listed, "can no longer pick it as a song-level reference")
    shots(page, "confirm-revocation")
    assert consent_current(holder=holder, recording=revoked).song_inference is True

    page.get_by_role("button", name="Confirm revocation").click()
    page.wait_for_url(re.compile(r".*/portal/holders/\d+/(#.*)?$"))
    assert page.get_by_role("status").first.inner_text().startswith("Consent saved")
    card = page.get_by_role("region", name=revoked.title, exact=True)
    assert not card.get_by_role("checkbox", name="Song-level inference").is_checked()
    assert card.get_by_role("checkbox", name="Parameter-level inference").is_checked()
    card.scroll_into_view_if_needed()
    shots(page, "after-revocation")
    version = consent_current(holder=holder, recording=revoked)
    assert version.song_inference is False and version.revoked == ["song_inference"]
    assert version.note == "no song-level covers" and version.changed_by == member

    card.get_by_role("link", name=f"Consent history of {revoked.title}").click()
    versions = page.get_by_role("table", name=re.compile("Consent versions of"))
    rows = versions.get_by_role("row")
    assert rows.count() == 3  # header, v2, v1
    expect_text(rows.nth(1), "v2")
    expect_text(rows.nth(1), "revoked Song-level inference")
    expect_text(rows.nth(1), "no song-level covers")
    expect_text(rows.nth(2), "v1")
    shots(page, "history")

    # the music maker can no longer pick it for song-level use, but still for the others
    refused = verdict(revoked)
    assert refused["permitted"] is False
    (reference,) = refused["references"]
    assert any("has not opted in to song-level inference" in r for r in reference["reasons"])
    assert verdict(kept)["permitted"] is True
    assert not searchable(revoked, "song_inference")
    assert searchable(revoked, "parameter_inference")


def test_holder_sees_the_payout_of_a_generation_and_downloads_the_csv(
    studio, open_session, make_user, shots, generation_worker, emptied_log_after
):
    holder, member = studio["holder"], studio["member"]
    referenced = studio["recordings"][4]
    trained = studio["recordings"][:4]

    # the music maker generates with one reference through the real API and worker
    maker = open_session(make_user("maker"))
    submitted = api_post(
        maker,
        "/api/generations/",
        {"references": [{"recording": referenced.pk, "level": "song", "weight": 1.0}],
         "distribution": "commercial", "seconds": 2.0},
    )  # fmt: skip
    assert submitted.status == 201, submitted.text()
    detail = wait_for_generation(maker, submitted.json()["id"])
    assert detail["status"] == "succeeded", detail.get("failure_reason")
    # the training-time attribution step settles the TDA pool (its job is off in tests)
    generation = GenerationRequest.objects.get(uid=detail["id"])
    tda_pool_settle(generation_ref=generation.ref, shares={trained[0].pk: 1.0})
    period = timezone.now().date().replace(day=1)
    owed = holder_period_totals(holder=holder, period=period, currency="EUR")
    assert owed.ita > 0 and owed.tda > 0 and owed.auxiliary > 0

    page = open_session(member)
    page.goto("/portal/")
    page.get_by_role("link", name=f"Payouts of {holder.name}").click()
    statement = page.get_by_role("table", name=re.compile("Amounts owed to"))
    expect_text(statement, "Direct")
    cells = {
        c: page.locator(f"td[data-component='{c}']").inner_text()
        for c in ("ita", "tda", "auxiliary", "total")
    }
    assert cells == {
        "ita": money(owed.ita),
        "tda": money(owed.tda),
        "auxiliary": money(owed.auxiliary),
        "total": money(owed.total),
    }
    by_recording = page.get_by_role("table", name="Amounts owed per recording, EUR")
    row = by_recording.get_by_role("row").filter(has_text=referenced.title)
    assert row.count() == 1
    expect_text(row, "1")  # one generation referenced it
    charts = page.get_by_role("img", name=re.compile("Payouts per"))
    assert charts.count() == 2
    recording_chart = page.get_by_role("img", name="Payouts per recording in the chosen month")
    assert recording_chart.locator("rect").count() >= 1
    assert referenced.title in recording_chart.inner_html()
    shots(page, "payouts")

    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("Download CSV")).click()
    assert download.value.suggested_filename == f"payouts-holder{holder.pk}-{period:%Y-%m}-EUR.csv"
    with open(download.value.path(), encoding="utf-8") as handle:
        lines = list(csv.reader(io.StringIO(handle.read())))
    assert lines[0][:3] == ["ISRC", "Title", "Artist"]
    column = {name: n for n, name in enumerate(lines[0])}
    direct = [line for line in lines[1:] if line[1] == referenced.title]
    assert [(line[3], line[column["RightsType"]], line[column["Amount"]]) for line in direct] == [
        ("GenerativeReference", "Master", money(owed.ita))
    ]
    use_types = {line[3] for line in lines[1:]}
    assert use_types == {
        "GenerativeReference",
        "GenerativeTrainingAttribution",
        "GenerativeTrainingAuxiliary",
    }


def wait_for_generation(page, uid: str, seconds: float = 180) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        detail = page.request.get(f"/api/generations/{uid}/").json()
        if detail["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return detail
        time.sleep(0.3)


def money(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def expect_text(locator, text: str) -> None:
    from playwright.sync_api import expect

    expect(locator).to_contain_text(text)


def test_holder_sees_who_consent_waits_on_and_revokes_in_bulk(
    co_held, make_recording, staff, open_session, shots
):
    from catalog.services.consent import consent_grant
    from catalog.services.rights import rights_shares_set

    a, b, shared = co_held["holder_a"], co_held["holder_b"], co_held["recording"]
    solo = make_recording("Solo Song")
    rights_shares_set(actor=staff, recording=solo, shares={a: 10_000})
    for recording in (shared, solo):
        consent_grant(actor=co_held["member_a"], holder=a, recording=recording,
                      uses=["training", "song_inference"], distributions=["private"])  # fmt: skip
    consent_grant(actor=co_held["member_b"], holder=b, recording=shared, uses=["song_inference"])

    page = open_session(co_held["member_a"])
    page.goto(f"/portal/holders/{a.pk}/")
    card = page.get_by_role("region", name="Shared Song", exact=True)
    expect_text(card, "Holder A 70% (you), Holder B 30%")
    expect_text(card, "Waiting on Holder B for Model training, Private use")
    expect_text(card, "Effective: all 2 holders agree on Song-level inference")
    shots(page, "co-held-recordings")

    page.get_by_role("checkbox", name="Select Shared Song for bulk change").check()
    page.get_by_role("checkbox", name="Select Solo Song for bulk change").check()
    bulk = page.get_by_role("group", name="Bulk change for the selected recordings")
    bulk.get_by_role("radio", name="Revoke (opt out)").check()
    bulk.get_by_role("checkbox", name="Model training").check()
    bulk.get_by_role("button", name="Apply to selected recordings").click()

    listed = page.get_by_role("region", name="What will be revoked")
    expect_text(listed, "Shared Song")
    expect_text(listed, "Solo Song")
    assert listed.get_by_role("listitem").count() == 2  # training, once per recording
    shots(page, "bulk-confirm")
    assert consent_current(holder=a, recording=solo).training is True
    page.get_by_role("button", name="Confirm revocation").click()
    expect_text(page.get_by_role("status").first, "Consent saved for 2 recordings")
    for recording in (shared, solo):
        version = consent_current(holder=a, recording=recording)
        assert version.training is False and version.song_inference is True
    card = page.get_by_role("region", name="Shared Song", exact=True)
    assert not card.get_by_role("checkbox", name="Model training").is_checked()
    expect_text(card, "Waiting on Holder B for Private use")
    shots(page, "after-bulk-revocation")
