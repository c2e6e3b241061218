"""The works API: everyone signed in reads works (shares, recordings); staff register works
and link recordings; writers' and publishers' members consent per work. Bad input is a 400
(403 for non-staff, 409 for a registered ISWC) and changes nothing."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from catalog.models import ConsentVersion, RecordingWork, RightsHolder, Work, WorkShare
from catalog.services.consent import consent_grant
from catalog.services.works import WorkShareSpec, recording_works_set, work_create

pytestmark = pytest.mark.django_db

EVERYTHING = {"uses": ["training", "song_inference", "parameter_inference", "audio_inference"],
              "distributions": ["private", "non_commercial", "commercial"]}  # fmt: skip


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def work_consent_url(holder, work, action: str = "") -> str:
    suffix = f"{action}/" if action else ""
    return f"/api/catalogue/holders/{holder.pk}/works/{work.pk}/consent/{suffix}"


def nothing_stored() -> bool:
    return not Work.objects.exists() and not WorkShare.objects.exists()


@pytest.fixture
def registration(writer_and_publisher):
    """A valid POST body: 50/50 writer and publisher."""
    return {
        "title": "Opening Theme",
        "iswc": "T-034.524.680-1",
        "shares": [
            {"holder": writer_and_publisher["writer"].pk, "role": "composer",
             "basis_points": 5_000},
            {"holder": writer_and_publisher["publisher"].pk, "role": "publisher",
             "basis_points": 5_000},
        ],
    }  # fmt: skip


def test_anyone_signed_in_reads_works_with_their_shares_and_recordings(
    work, writer_and_publisher, make_recording, make_user, staff
):
    recording = make_recording("Theme (live)", isrc="GBAYE0601498")
    recording_works_set(actor=staff, recording=recording, works={work: 10_000})
    client = client_for(make_user())

    page = client.get("/api/catalogue/works/").json()
    assert page["count"] == 1
    (listed,) = page["results"]
    writer = writer_and_publisher["writer"]
    assert listed["title"] == "Shared Theme" and listed["iswc"] == "T0345246801"
    publisher = writer_and_publisher["publisher"]
    assert listed["shares"] == [  # largest first, then by name
        {"holder": writer.pk, "name": "Ada Writer", "ipi": "00014107338",
         "role": "composer", "basis_points": 5_000},
        {"holder": publisher.pk, "name": "Demo Publishing", "ipi": "00052210040",
         "role": "publisher", "basis_points": 5_000},
    ]  # fmt: skip
    assert listed["recordings"] == [
        {"id": recording.pk, "title": "Theme (live)", "artist": "Test Artist",
         "isrc": "GBAYE0601498", "basis_points": 10_000}
    ]  # fmt: skip
    assert client.get(f"/api/catalogue/works/{work.pk}/").json() == listed

    by_iswc = client.get("/api/catalogue/works/", {"iswc": "T-034.524.680-1"}).json()
    assert by_iswc["count"] == 1
    assert client.get("/api/catalogue/works/", {"q": "nothing like it"}).json()["count"] == 0
    bad = client.get("/api/catalogue/works/", {"iswc": "T-034.524.680-9"})
    assert bad.status_code == 400 and "check digit" in bad.json()["error"]["message"]
    missing = client.get("/api/catalogue/works/999999/")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert APIClient().get("/api/catalogue/works/").status_code in (401, 403)


def test_the_recording_detail_lists_the_works_it_embodies(work, staff, make_recording, make_user):
    other = work_create(
        actor=staff, title="Second Theme",
        shares=[WorkShareSpec(RightsHolder.objects.get(name="Ada Writer"), "composer", 10_000)],
    )  # fmt: skip
    medley = make_recording("Medley")
    recording_works_set(actor=staff, recording=medley, works={work: 6_000, other: 4_000})
    body = client_for(make_user()).get(f"/api/catalogue/recordings/{medley.pk}/").json()
    assert body["works"] == [
        {"id": work.pk, "title": "Shared Theme", "iswc": "T0345246801", "basis_points": 6_000},
        {"id": other.pk, "title": "Second Theme", "iswc": None, "basis_points": 4_000},
    ]


def test_staff_register_a_work(staff, registration, writer_and_publisher):
    response = client_for(staff).post("/api/catalogue/works/", registration, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    work = Work.objects.get()
    assert body["id"] == work.pk and work.iswc == "T0345246801"
    assert body["recordings"] == []
    assert set(work.shares.values_list("holder__name", "role", "basis_points")) == {
        ("Ada Writer", "composer", 5_000), ("Demo Publishing", "publisher", 5_000),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"iswc": "T-034.524.680-9"}, "check digit"),
        ({"iswc": "034.524.680-1"}, "ISWC"),
        ({"shares": [{"holder": "writer", "role": "composer", "basis_points": 9_000}]},
         "sum to exactly"),
        ({"shares": [{"holder": 999_999, "role": "composer", "basis_points": 10_000}]},
         "unknown rights holder"),
        ({"shares": [{"holder": "writer", "role": "drummer", "basis_points": 10_000}]},
         "invalid"),
        ({"shares": [{"holder": "writer", "role": "composer", "basis_points": 0}]}, "invalid"),
        ({"shares": []}, "invalid"),
        ({"title": ""}, "invalid"),
        ({"shares": [{"holder": "writer", "role": "composer", "basis_points": 5_000},
                     {"holder": "writer", "role": "lyricist", "basis_points": 5_000}]},
         "twice"),
    ],
)  # fmt: skip
def test_bad_registrations_are_400_and_store_nothing(
    staff, registration, writer_and_publisher, change, fragment
):
    body = {**registration, **change}
    for share in body["shares"]:
        if share["holder"] == "writer":
            share["holder"] = writer_and_publisher["writer"].pk
    holders = RightsHolder.objects.count()
    response = client_for(staff).post("/api/catalogue/works/", body, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert fragment in f"{error['message']} {error['details']}", error
    assert nothing_stored() and RightsHolder.objects.count() == holders


def test_only_staff_register_works_and_an_iswc_is_registered_once(
    staff, registration, writer_and_publisher
):
    for member in ("writer_member", "publisher_member"):
        refused = client_for(writer_and_publisher[member]).post(
            "/api/catalogue/works/", registration, format="json"
        )
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    # 403 comes first: a non-staff user learns nothing from its input being checked
    unknown = {**registration, "shares": [{"holder": 999_999, "role": "composer",
                                           "basis_points": 10_000}]}  # fmt: skip
    assert (
        client_for(writer_and_publisher["writer_member"])
        .post("/api/catalogue/works/", unknown, format="json")
        .status_code
        == 403
    )
    assert nothing_stored()

    client = client_for(staff)
    assert client.post("/api/catalogue/works/", registration, format="json").status_code == 201
    again = client.post(
        "/api/catalogue/works/", {**registration, "iswc": "T0345246801"}, format="json"
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    assert Work.objects.count() == 1 and WorkShare.objects.count() == 2


def test_staff_link_a_recording_to_works_and_bad_links_change_nothing(
    staff, work, writer_and_publisher, make_recording
):
    other = work_create(
        actor=staff, title="Second Theme",
        shares=[WorkShareSpec(writer_and_publisher["writer"], "composer", 10_000)],
    )  # fmt: skip
    medley = make_recording("Medley")
    url = f"/api/catalogue/recordings/{medley.pk}/works/"
    client = client_for(staff)
    done = client.put(
        url,
        [{"work": work.pk, "basis_points": 7_000}, {"work": other.pk, "basis_points": 3_000}],
        format="json",
    )
    assert done.status_code == 200, done.json()
    assert [(w["id"], w["basis_points"]) for w in done.json()] == [
        (work.pk, 7_000), (other.pk, 3_000),
    ]  # fmt: skip

    def links() -> set[tuple[int, int]]:
        return set(
            RecordingWork.objects.filter(recording=medley).values_list("work_id", "basis_points")
        )

    before = links()
    for body, fragment in [
        ([{"work": 999_999, "basis_points": 10_000}], "unknown work"),
        ([{"work": work.pk, "basis_points": 6_000}], "sum to exactly"),
        ([{"work": work.pk, "basis_points": 5_000}, {"work": work.pk, "basis_points": 5_000}],
         "twice"),
        ([{"work": work.pk, "basis_points": 0}], "invalid"),
        ({"work": work.pk, "basis_points": 10_000}, "invalid"),
    ]:  # fmt: skip
        response = client.put(url, body, format="json")
        assert response.status_code == 400, (body, response.json())
        error = response.json()["error"]
        assert fragment in f"{error['message']} {error['details']}", error
        assert links() == before

    refused = client_for(writer_and_publisher["writer_member"]).put(url, [], format="json")
    assert refused.status_code == 403 and links() == before
    assert client.put("/api/catalogue/recordings/999999/works/", [], format="json").status_code == (
        404
    )
    unlinked = client.put(url, [], format="json")
    assert unlinked.status_code == 200 and unlinked.json() == [] and links() == set()


def test_a_writers_member_consents_for_its_work_and_the_recording_follows(
    staff, co_held, work, writer_and_publisher, make_user
):
    recording = co_held["recording"]
    for who in "ab":
        consent_grant(actor=co_held[f"member_{who}"], holder=co_held[f"holder_{who}"],
                      recording=recording, **EVERYTHING)  # fmt: skip
    recording_works_set(actor=staff, recording=recording, works={work: 10_000})
    writer, publisher = writer_and_publisher["writer"], writer_and_publisher["publisher"]
    client = client_for(writer_and_publisher["writer_member"])

    granted = client.post(
        work_consent_url(writer, work, "grant"),
        {"uses": ["song_inference"], "distributions": ["private"], "note": "ok"},
        format="json",
    )
    assert granted.status_code == 200, granted.json()
    body = granted.json()
    assert body["work"]["id"] == work.pk and body["current"]["song_inference"] is True
    assert body["effective"]["uses"]["song_inference"] is False  # the publisher has not agreed
    revoked = client.post(
        work_consent_url(writer, work, "revoke"), {"distributions": ["private"]}, format="json"
    )
    assert [v["number"] for v in revoked.json()["history"]] == [2, 1]
    assert revoked.json()["current"]["private"] is False
    assert client.get(work_consent_url(writer, work)).json()["current"]["number"] == 2

    listing = client.get(f"/api/catalogue/holders/{writer.pk}/works/").json()
    assert listing["count"] == 1 and listing["results"][0]["work"]["title"] == "Shared Theme"
    assert listing["results"][0]["consent"]["number"] == 2

    # both sides of the song: the recording permits song-level private use only when the
    # writer and the publisher agree as well as the master holders
    detail = f"/api/catalogue/recordings/{recording.pk}/"
    reader = client_for(make_user())
    assert reader.get(detail).json()["effective_consent"]["uses"]["song_inference"] is False
    client.post(work_consent_url(writer, work, "grant"), EVERYTHING, format="json")
    publisher_client = client_for(writer_and_publisher["publisher_member"])
    publisher_client.post(work_consent_url(publisher, work, "grant"), EVERYTHING, format="json")
    effective = reader.get(detail).json()["effective_consent"]
    assert effective["uses"]["song_inference"] and effective["distributions"]["commercial"]


def test_work_consent_of_another_holder_is_hidden_and_staff_do_not_consent(
    co_held, work, writer_and_publisher, staff, make_holder, make_user
):
    writer, publisher = writer_and_publisher["writer"], writer_and_publisher["publisher"]
    outsider = client_for(co_held["member_a"])
    for response in (
        outsider.get(f"/api/catalogue/holders/{writer.pk}/works/"),
        outsider.get(work_consent_url(writer, work)),
        outsider.post(work_consent_url(writer, work, "grant"), {"uses": ["training"]},
                      format="json"),
        client_for(writer_and_publisher["writer_member"]).post(
            work_consent_url(publisher, work, "grant"), {"uses": ["training"]}, format="json"
        ),
    ):  # fmt: skip
        # the words an unknown holder gets, as for the recordings' consent endpoints
        assert response.status_code == 404
        assert response.json()["error"]["message"].startswith("rights holder ")
        assert response.json()["error"]["message"].endswith(" does not exist")
    not_held = client_for(co_held["member_a"]).get(work_consent_url(co_held["holder_a"], work))
    assert not_held.status_code == 404 and "has no work" in not_held.json()["error"]["message"]

    assert client_for(staff).get(work_consent_url(writer, work)).status_code == 200
    by_staff = client_for(staff).post(
        work_consent_url(writer, work, "grant"), {"uses": ["training"]}, format="json"
    )
    assert by_staff.status_code == 403
    for payload in ({"uses": ["karaoke"]}, {"distributions": "private"}, {}):
        bad = client_for(writer_and_publisher["writer_member"]).post(
            work_consent_url(writer, work, "grant"), payload, format="json"
        )
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_input"
    assert not ConsentVersion.objects.exists()


def test_the_schema_documents_the_works_operations(make_user):
    schema = (
        client_for(make_user())
        .get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
        .json()
    )
    paths = schema["paths"]
    assert {"get", "post"} <= set(paths["/api/catalogue/works/"])
    assert "put" in paths["/api/catalogue/recordings/{recording_id}/works/"]
    grant = paths["/api/catalogue/holders/{holder_id}/works/{work_id}/consent/grant/"]["post"]
    ref = grant["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/HolderWorkConsentOutput")
    created = paths["/api/catalogue/works/"]["post"]["responses"]
    assert created["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/WorkOutput")
    assert "409" in created
