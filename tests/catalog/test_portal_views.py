"""The rights-holder consent portal's pages through Django's test client: what a holder sees
(co-holders, shares, toggles, effective or waiting), grants at once, revocations only after
confirmation, bulk changes in one transaction, history, and bad input changing nothing."""

from __future__ import annotations

import pytest
from django.test import Client

from catalog.models import CONSENT_BIT_NAMES, ConsentVersion
from catalog.selectors import (
    basis_points_percent,
    consent_current,
    holder_consent_overview,
    parse_consent_names,
)
from catalog.services.consent import consent_grant
from catalog.services.rights import rights_shares_set
from catalog.services.works import recording_works_set
from config.exceptions import InvalidInput

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def holder_url(holder) -> str:
    return f"/portal/holders/{holder.pk}/"


def change_url(holder, recording) -> str:
    return f"/portal/holders/{holder.pk}/recordings/{recording.pk}/consent/"


def history_url(holder, recording) -> str:
    return f"/portal/holders/{holder.pk}/recordings/{recording.pk}/history/"


def bulk_url(holder) -> str:
    return f"/portal/holders/{holder.pk}/consents/bulk/"


def permitted(holder, recording) -> set[str]:
    version = consent_current(holder=holder, recording=recording)
    names = ("training", "song_inference", "parameter_inference", "audio_inference",
             "private", "non_commercial", "commercial")  # fmt: skip
    return {n for n in names if version and version.permits(n)}


@pytest.fixture
def solo(co_held, make_recording, staff):
    """A second recording held by A alone."""
    recording = make_recording("Solo Song")
    rights_shares_set(actor=staff, recording=recording, shares={co_held["holder_a"]: 10_000})
    return recording


def test_portal_home_lists_only_the_users_holders_and_needs_sign_in(co_held, make_holder):
    make_holder("Someone Else")
    page = client_for(co_held["member_a"]).get("/portal/")
    assert page.status_code == 200
    assert b"Holder A" in page.content and b"Someone Else" not in page.content
    assert holder_url(co_held["holder_a"]).encode() in page.content
    assert f"/portal/holders/{co_held['holder_a'].pk}/payouts/".encode() in page.content
    assert Client().get("/portal/").status_code == 302  # to the sign-in page


def test_holder_page_shows_shares_toggles_and_who_consent_waits_on(co_held):
    a, b, recording = co_held["holder_a"], co_held["holder_b"], co_held["recording"]
    consent_grant(actor=co_held["member_a"], holder=a, recording=recording,
                  uses=["song_inference"], distributions=["commercial"])  # fmt: skip
    consent_grant(actor=co_held["member_b"], holder=b, recording=recording,
                  uses=["song_inference"])  # fmt: skip

    page = client_for(co_held["member_a"]).get(holder_url(a))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Holder A 70% (you)" in html and "Holder B 30%" in html
    assert "Effective: all 2 holders agree" in html
    assert "Waiting on Holder B" in html
    # A's own toggles: song-level and commercial checked, training not; each is labelled
    rid = recording.pk
    assert f'id="c-{rid}-song_inference" name="consent" value="song_inference"\n' in html
    assert f'<label for="c-{rid}-training">Model training</label>' in html
    toggles = html.split(f'id="c-{rid}-')
    checked = {t.split('"')[0] for t in toggles[1:] if "checked" in t.split(">")[0]}
    assert checked == {"song_inference", "commercial"}

    (row,) = holder_consent_overview(holder=a, recordings=[recording])
    assert [(t.name, t.waiting_on) for t in row.waiting] == [("commercial", ["Holder B"])]
    assert [t.name for t in row.effective] == ["song_inference"]
    assert row.waiting_by_holder == [("Holder B", ["Commercial distribution"])]
    assert row.blocked_by_distribution  # B allows no distribution yet
    assert "Not usable yet" in html

    consent_grant(actor=co_held["member_b"], holder=b, recording=recording,
                  distributions=["commercial"])  # fmt: skip
    (row,) = holder_consent_overview(holder=a, recordings=[recording])
    assert not row.waiting and not row.blocked_by_distribution
    assert (
        "Not usable yet" not in client_for(co_held["member_a"]).get(holder_url(a)).content.decode()
    )


def test_page_of_another_holder_is_404_like_an_unknown_holder(co_held):
    client = client_for(co_held["member_b"])
    holder_a = co_held["holder_a"]
    assert client.get(holder_url(holder_a)).status_code == 404
    assert client.get("/portal/holders/999999/").status_code == 404
    page = client.get(history_url(holder_a, co_held["recording"]))
    assert page.status_code == 404
    assert f"rights holder {holder_a.pk} does not exist".encode() in page.content


def test_grant_applies_at_once_and_redirects_to_the_recording(co_held):
    a, recording = co_held["holder_a"], co_held["recording"]
    response = client_for(co_held["member_a"]).post(
        change_url(a, recording), {"consent": ["song_inference", "private"], "note": "first"}
    )
    assert response.status_code == 302
    assert response["Location"].endswith(f"{holder_url(a)}#recording-{recording.pk}")
    assert permitted(a, recording) == {"song_inference", "private"}
    assert consent_current(holder=a, recording=recording).note == "first"


def test_revocation_is_applied_only_after_confirmation(co_held):
    a, recording = co_held["holder_a"], co_held["recording"]
    consent_grant(actor=co_held["member_a"], holder=a, recording=recording,
                  uses=["training", "song_inference"], distributions=["private"])  # fmt: skip
    client = client_for(co_held["member_a"])

    # unticking song-level inference: a confirmation page, nothing revoked yet
    form = {"consent": ["training", "private"], "note": "no covers"}
    confirm = client.post(change_url(a, recording), form)
    html = confirm.content.decode()
    assert confirm.status_code == 200
    assert "Confirm revocation" in html and "Song-level inference" in html
    assert "can no longer pick it as a song-level reference" in html
    assert "Generations already made stay attributed" in html
    assert '<input type="hidden" name="confirmed" value="yes">' in html
    assert "Model training" not in html.split("What will be revoked")[1].split("</div>")[0]
    assert permitted(a, recording) == {"training", "song_inference", "private"}
    assert ConsentVersion.objects.filter(holder=a).count() == 1

    done = client.post(change_url(a, recording), {**form, "confirmed": "yes"})
    assert done.status_code == 302
    assert permitted(a, recording) == {"training", "private"}
    latest = consent_current(holder=a, recording=recording)
    assert latest.number == 2 and latest.revoked == ["song_inference"]
    assert latest.note == "no covers" and latest.changed_by == co_held["member_a"]

    history = client.get(history_url(a, recording)).content.decode()
    assert "v2" in history and "v1" in history and "no covers" in history
    assert "revoked</span> Song-level inference" in history
    assert "member-a" in history


def test_unknown_use_name_is_400_and_changes_nothing(co_held):
    a, recording = co_held["holder_a"], co_held["recording"]
    response = client_for(co_held["member_a"]).post(
        change_url(a, recording), {"consent": ["song_inference", "telepathy"]}
    )
    assert response.status_code == 400 and b"telepathy" in response.content
    assert not ConsentVersion.objects.exists()


def test_another_holders_recording_or_holder_is_refused_and_changes_nothing(
    co_held, make_recording, make_holder, staff
):
    a, recording = co_held["holder_a"], co_held["recording"]
    elsewhere = make_recording("Not A's")
    rights_shares_set(actor=staff, recording=elsewhere, shares={make_holder("C"): 10_000})
    member_a = client_for(co_held["member_a"])
    assert member_a.post(change_url(a, elsewhere), {"consent": ["training"]}).status_code == 404
    member_b = client_for(co_held["member_b"])
    assert member_b.post(change_url(a, recording), {"consent": ["training"]}).status_code == 404
    revoke = {"action": "revoke", "names": ["training"], "recordings": [recording.pk],
              "confirmed": "yes"}  # fmt: skip
    assert member_b.post(bulk_url(a), revoke).status_code == 404
    assert client_for(co_held["member_a"]).get(change_url(a, recording)).status_code == 405
    assert not ConsentVersion.objects.exists()


def test_bulk_grant_then_bulk_revoke_with_confirmation(co_held, solo):
    a, shared = co_held["holder_a"], co_held["recording"]
    client = client_for(co_held["member_a"])
    grant = {"action": "grant", "names": ["training", "commercial"],
             "recordings": [shared.pk, solo.pk]}  # fmt: skip
    assert client.post(bulk_url(a), grant).status_code == 302
    assert permitted(a, shared) == permitted(a, solo) == {"training", "commercial"}

    revoke = {"action": "revoke", "names": ["training"], "recordings": [shared.pk, solo.pk]}
    confirm = client.post(bulk_url(a), revoke)
    html = confirm.content.decode()
    assert confirm.status_code == 200 and "Confirm revocation" in html
    assert "Shared Song" in html and "Solo Song" in html and "Model training" in html
    assert "model trained without it" in html
    assert permitted(a, shared) == {"training", "commercial"}  # not yet

    assert client.post(bulk_url(a), {**revoke, "confirmed": "yes"}).status_code == 302
    assert permitted(a, shared) == permitted(a, solo) == {"commercial"}
    assert ConsentVersion.objects.filter(holder=a).count() == 4  # grant + revoke, twice


def test_bulk_change_including_a_recording_not_held_changes_nothing(co_held, solo, make_recording):
    a = co_held["holder_a"]
    stranger = make_recording("Unheld")
    client = client_for(co_held["member_a"])
    response = client.post(
        bulk_url(a),
        {"action": "grant", "names": ["training"], "recordings": [solo.pk, stranger.pk]},
    )
    assert response.status_code == 404
    assert not ConsentVersion.objects.exists()  # the solo recording was not granted either
    bad = [
        {"action": "grant", "names": ["teleport"], "recordings": [solo.pk]},
        {"action": "grant", "names": [], "recordings": [solo.pk]},
        {"action": "grant", "names": ["training"], "recordings": []},
        {"action": "grant", "names": ["training"], "recordings": ["x"]},
        {"action": "erase", "names": ["training"], "recordings": [solo.pk]},
    ]
    for form in bad:
        assert client.post(bulk_url(a), form).status_code == 400, form
    assert not ConsentVersion.objects.exists()


def test_history_of_a_recording_never_consented(co_held):
    page = client_for(co_held["member_a"]).get(
        history_url(co_held["holder_a"], co_held["recording"])
    )
    assert page.status_code == 200
    assert b"No consent given yet" in page.content and b"none (opted out)" in page.content


def test_consent_names_and_percentages():
    assert parse_consent_names(["commercial", "training", "training"]) == (
        ["training"],
        ["commercial"],
    )
    with pytest.raises(InvalidInput):
        parse_consent_names(["training", "everything"])
    assert [basis_points_percent(bp) for bp in (7000, 3333, 5050, 1, 10_000)] == [
        "70", "33.33", "50.5", "0.01", "100",
    ]  # fmt: skip


def test_recordings_are_paged_and_a_change_returns_to_its_page(co_held, make_recording, staff):
    a = co_held["holder_a"]
    for n in range(25):
        recording = make_recording(f"Album Track {n:02d}", artist="A Band")
        rights_shares_set(actor=staff, recording=recording, shares={a: 10_000})
    client = client_for(co_held["member_a"])
    first = client.get(holder_url(a)).content.decode()
    assert "Page 1 of 2" in first and "Shared Song" not in first  # "Test Artist" sorts last
    second = client.get(holder_url(a), {"page": 2}).content.decode()
    assert "Shared Song" in second and '<input type="hidden" name="page" value="2">' in second
    response = client.post(
        change_url(a, co_held["recording"]), {"consent": ["private"], "page": "2"}
    )
    assert response["Location"].endswith(f"?page=2#recording-{co_held['recording'].pk}")


# --- works: writers and publishers consent per work ---------------------------------------------


def works_url(holder) -> str:
    return f"/portal/holders/{holder.pk}/works/"


def work_change_url(holder, work) -> str:
    return f"/portal/holders/{holder.pk}/works/{work.pk}/consent/"


def work_permitted(holder, work) -> set[str]:
    version = consent_current(holder=holder, work=work)
    return {n for n in CONSENT_BIT_NAMES if version and version.permits(n)}


@pytest.fixture
def embodied(co_held, work, staff):
    """Holder A and B's recording embodies the writer's and publisher's work."""
    recording_works_set(actor=staff, recording=co_held["recording"], works={work: 10_000})
    return work


def test_a_writer_sees_its_works_with_co_holders_and_recordings(
    co_held, embodied, writer_and_publisher
):
    writer = writer_and_publisher["writer"]
    client = client_for(writer_and_publisher["writer_member"])
    home = client.get("/portal/").content.decode()
    assert works_url(writer) in home
    # a holder without works gets no works link
    assert (
        works_url(co_held["holder_a"])
        not in client_for(co_held["member_a"]).get("/portal/").content.decode()
    )

    html = client.get(works_url(writer)).content.decode()
    assert "Shared Theme" in html and "ISWC T0345246801" in html
    assert "Ada Writer 50% composer (you)" in html and "Demo Publishing 50% publisher" in html
    assert "Shared Song" in html and "Test Artist" in html  # the recording embodying it
    assert f'id="w-{embodied.pk}-training" name="consent" value="training"' in html
    assert "No consent given yet (opted out)" in html


def test_work_consent_is_granted_at_once_and_revoked_after_confirmation(
    co_held, embodied, writer_and_publisher
):
    writer, work = writer_and_publisher["writer"], embodied
    client = client_for(writer_and_publisher["writer_member"])
    granted = client.post(
        work_change_url(writer, work), {"consent": ["training", "song_inference", "private"]}
    )
    assert granted.status_code == 302
    assert granted["Location"].endswith(f"{works_url(writer)}#work-{work.pk}")
    assert work_permitted(writer, work) == {"training", "song_inference", "private"}
    page = client.get(works_url(writer)).content.decode()
    assert "Waiting on Demo Publishing" in page

    form = {"consent": ["training", "private"], "note": "no covers"}
    confirm = client.post(work_change_url(writer, work), form)
    html = confirm.content.decode()
    assert confirm.status_code == 200 and "Confirm revocation" in html
    assert "for\n1 work." in html and "Song-level inference" in html
    assert "every recording embodying the work: Shared Song (Test Artist)" in html
    assert work_permitted(writer, work) == {"training", "song_inference", "private"}  # not yet

    done = client.post(work_change_url(writer, work), {**form, "confirmed": "yes"})
    assert done.status_code == 302
    latest = consent_current(holder=writer, work=work)
    assert latest.number == 2 and latest.revoked == ["song_inference"]
    assert latest.note == "no covers"
    history = client.get(f"/portal/holders/{writer.pk}/works/{work.pk}/history/")
    text = history.content.decode()
    assert history.status_code == 200 and "no covers" in text and "v2" in text
    assert "Ada Writer (composer) (you)" in text and "Demo Publishing (publisher)" in text


def test_work_changes_by_others_or_with_bad_names_are_refused_and_change_nothing(
    co_held, embodied, writer_and_publisher, staff
):
    writer, publisher, work = (
        writer_and_publisher["writer"], writer_and_publisher["publisher"], embodied
    )  # fmt: skip
    outsider = client_for(co_held["member_a"])
    assert outsider.get(works_url(writer)).status_code == 404
    assert outsider.post(work_change_url(writer, work), {"consent": ["training"]}).status_code == (
        404
    )
    # holder A holds the recording, not the work
    not_held = outsider.post(work_change_url(co_held["holder_a"], work), {"consent": ["training"]})
    assert not_held.status_code == 404
    member = client_for(writer_and_publisher["writer_member"])
    assert member.post(work_change_url(publisher, work), {"consent": ["training"]}).status_code == (
        404
    )
    bad = member.post(work_change_url(writer, work), {"consent": ["training", "telepathy"]})
    assert bad.status_code == 400 and b"telepathy" in bad.content
    # staff may look but not consent for a holder
    assert client_for(staff).get(works_url(writer)).status_code == 200
    by_staff = client_for(staff).post(work_change_url(writer, work), {"consent": ["training"]})
    assert by_staff.status_code == 403
    assert not ConsentVersion.objects.filter(work=work).exists()


def test_the_recordings_page_shows_who_holds_its_works_and_waits_on_them(
    co_held, embodied, writer_and_publisher
):
    a, b, recording = co_held["holder_a"], co_held["holder_b"], co_held["recording"]
    for member, holder in ((co_held["member_a"], a), (co_held["member_b"], b)):
        consent_grant(actor=member, holder=holder, recording=recording, uses=["training"],
                      distributions=["private"])  # fmt: skip
    consent_grant(
        actor=writer_and_publisher["writer_member"], holder=writer_and_publisher["writer"],
        work=embodied, uses=["training"], distributions=["private"],
    )  # fmt: skip
    html = client_for(co_held["member_a"]).get(holder_url(a)).content.decode()
    assert "Work 'Shared Theme':</strong> Ada Writer, Demo Publishing" in html
    assert "Waiting on Demo Publishing (work &#x27;Shared Theme&#x27;)" in html
    assert "Effective: all 2 holders agree" not in html
    history = client_for(co_held["member_a"]).get(history_url(a, recording)).content.decode()
    assert "Demo Publishing (work &#x27;Shared Theme&#x27;)" in history
