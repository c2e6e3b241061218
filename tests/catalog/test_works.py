"""Musical works: ISWC, writers' and publishers' shares, recordings embodying works, and
consent that needs both sides of a song (master holders and every embodied work's holders)."""

import random

import pytest
from django.db import IntegrityError, connection, transaction

from catalog.models import (
    CONSENT_BIT_NAMES,
    ConsentVersion,
    RecordingWork,
    Work,
    WorkShare,
    iswc_check_digit,
)
from catalog.selectors import (
    holder_consent_overview,
    recording_effective_consent,
    recordings_consent_state,
    recordings_permitting,
)
from catalog.services.consent import consent_grant, consent_revoke
from catalog.services.rights import rights_holder_create
from catalog.services.works import (
    WorkShareSpec,
    iswc_checked,
    recording_works_set,
    work_create,
    work_shares_set,
)
from config.exceptions import Conflict, Forbidden, InvalidInput
from generation.verification import ReferenceSpec, references_verify
from tests.catalog.test_consent_masks import expected_mask, found, masks_of

pytestmark = pytest.mark.django_db
EVERYTHING = {"uses": ["training", "song_inference", "parameter_inference", "audio_inference"],
              "distributions": ["private", "non_commercial", "commercial"]}  # fmt: skip


def song_reference(recording) -> ReferenceSpec:
    return ReferenceSpec(recording_id=recording.pk, level="song", role="style", weight=1.0)


def grant_all(member, holder, **subject):
    consent_grant(actor=member, holder=holder, **subject, **EVERYTHING)


# --- ISWC and shares ---------------------------------------------------------------------------


def test_iswc_is_normalised_and_its_check_digit_verified():
    assert iswc_checked("T-034.524.680-1") == "T0345246801"
    assert iswc_checked("t0345246801") == "T0345246801"
    assert iswc_checked("") is None and iswc_checked(None) is None
    assert iswc_check_digit("034524680") == 1
    with pytest.raises(InvalidInput, match="check digit"):
        iswc_checked("T-034.524.680-2")
    for bad in ("034.524.680-1", "T-034.524.680", "X0345246801", "T03452468011"):
        with pytest.raises(InvalidInput, match="ISWC"):
            iswc_checked(bad)


def test_a_work_is_stored_with_its_shares_and_its_iswc(work, writer_and_publisher):
    assert work.iswc == "T0345246801"
    shares = {s.holder_id: (s.role, s.basis_points) for s in work.shares.all()}
    assert shares == {
        writer_and_publisher["writer"].pk: ("composer", 5_000),
        writer_and_publisher["publisher"].pk: ("publisher", 5_000),
    }


@pytest.mark.parametrize(
    ("shares", "iswc", "error"),
    [
        (
            [("writer", "composer", 6_000), ("publisher", "publisher", 3_000)],
            None,
            "sum to exactly",
        ),
        ([("writer", "composer", 10_000)], "T-034.524.680-9", "check digit"),
        ([("writer", "drummer", 10_000)], None, "role"),
        ([("writer", "composer", 0), ("publisher", "publisher", 10_000)], None, "between 1"),
        ([("writer", "composer", 5_000), ("writer", "lyricist", 5_000)], None, "twice"),
        ([], None, "at least one"),
    ],
)
def test_bad_works_are_refused_and_nothing_is_stored(
    staff, writer_and_publisher, shares, iswc, error
):
    specs = [WorkShareSpec(writer_and_publisher[h], role, bp) for h, role, bp in shares]
    with pytest.raises(InvalidInput, match=error):
        work_create(actor=staff, title="Bad", iswc=iswc, shares=specs)
    assert not Work.objects.exists() and not WorkShare.objects.exists()


def test_publishers_need_an_ipi_staff_register_works_and_an_iswc_is_registered_once(
    staff, make_holder, make_user, work, writer_and_publisher
):
    no_ipi = make_holder("No IPI Publisher")
    with pytest.raises(InvalidInput, match="IPI"):
        work_create(actor=staff, title="X", shares=[WorkShareSpec(no_ipi, "publisher", 10_000)])
    assert (
        work_create(  # a writer's IPI is optional (not every songwriter has one yet)
            actor=staff, title="Self-published", shares=[WorkShareSpec(no_ipi, "composer", 10_000)]
        ).iswc
        is None
    )
    writer = writer_and_publisher["writer"]
    with pytest.raises(Forbidden):
        work_create(
            actor=make_user(), title="X", shares=[WorkShareSpec(writer, "composer", 10_000)]
        )
    with pytest.raises(Conflict, match="T0345246801"):
        work_create(
            actor=staff, title="Again", iswc="T0345246801",
            shares=[WorkShareSpec(writer, "composer", 10_000)],
        )  # fmt: skip
    assert Work.objects.count() == 2


def test_the_database_refuses_work_shares_or_links_that_do_not_sum_to_10000(
    work, writer_and_publisher, make_recording
):
    with pytest.raises(IntegrityError, match="shares of work"), transaction.atomic():
        WorkShare.objects.filter(work=work, role="publisher").update(basis_points=4_000)
        immediately_checked()
    recording = make_recording()
    with pytest.raises(IntegrityError, match="work links of recording"), transaction.atomic():
        RecordingWork.objects.create(recording=recording, work=work, basis_points=6_000)
        immediately_checked()
    assert not RecordingWork.objects.exists()
    assert sorted(work.shares.values_list("basis_points", flat=True)) == [5_000, 5_000]


def immediately_checked() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the triggers are deferred to commit


def test_a_medley_embodies_several_works_whose_links_sum_to_10000(
    staff, work, writer_and_publisher, make_recording
):
    other = work_create(
        actor=staff, title="Second Theme",
        shares=[WorkShareSpec(writer_and_publisher["writer"], "composer_lyricist", 10_000)],
    )  # fmt: skip
    medley = make_recording("Medley")
    with pytest.raises(InvalidInput, match="sum to exactly"):
        recording_works_set(actor=staff, recording=medley, works={work: 6_000, other: 3_000})
    assert not RecordingWork.objects.filter(recording=medley).exists()
    recording_works_set(actor=staff, recording=medley, works={work: 6_000, other: 4_000})
    links = dict(
        RecordingWork.objects.filter(recording=medley).values_list("work_id", "basis_points")
    )
    assert links == {work.pk: 6_000, other.pk: 4_000}
    with pytest.raises(Forbidden):
        recording_works_set(actor=writer_and_publisher["writer_member"], recording=medley, works={})


# --- consent on both sides ---------------------------------------------------------------------


def test_a_recording_needs_its_works_holders_consent_as_well_as_its_masters(
    staff, co_held, work, writer_and_publisher
):
    recording = co_held["recording"]
    grant_all(co_held["member_a"], co_held["holder_a"], recording=recording)
    grant_all(co_held["member_b"], co_held["holder_b"], recording=recording)
    assert recording_effective_consent(recording=recording).permits("training", "commercial")

    recording_works_set(actor=staff, recording=recording, works={work: 10_000})
    assert not recording_effective_consent(recording=recording).permits("training")
    assert not recordings_permitting(use="training").filter(pk=recording.pk).exists()

    grant_all(writer_and_publisher["writer_member"], writer_and_publisher["writer"], work=work)
    consent_grant(
        actor=writer_and_publisher["publisher_member"], holder=writer_and_publisher["publisher"],
        work=work, uses=["song_inference"], distributions=["private", "non_commercial"],
    )  # fmt: skip
    effective = recording_effective_consent(recording=recording)
    assert effective.permits("song_inference", "non_commercial")
    assert not effective.permits("training") and not effective.permits(
        "song_inference", "commercial"
    )
    permitted = recordings_permitting(use="song_inference", distribution="non_commercial")
    assert permitted.filter(pk=recording.pk).exists()
    assert not recordings_permitting(use="training").filter(pk=recording.pk).exists()


def test_verification_says_which_publisher_withholds_and_records_its_consent_version(
    staff, co_held, work, writer_and_publisher
):
    recording = co_held["recording"]
    for member, holder in (("member_a", "holder_a"), ("member_b", "holder_b")):
        grant_all(co_held[member], co_held[holder], recording=recording)
    recording_works_set(actor=staff, recording=recording, works={work: 10_000})
    grant_all(writer_and_publisher["writer_member"], writer_and_publisher["writer"], work=work)
    publisher_version = consent_grant(
        actor=writer_and_publisher["publisher_member"], holder=writer_and_publisher["publisher"],
        work=work, uses=["song_inference"], distributions=["private"],
    )  # fmt: skip
    verdict = references_verify(
        references=[song_reference(recording)],
        distribution="commercial", with_alternatives=False,
    ).verdicts[0]  # fmt: skip
    assert not verdict.permitted
    assert verdict.reasons == [
        "Demo Publishing (work 'Shared Theme') does not permit commercial distribution"
    ]
    assert publisher_version.pk in verdict.consent_version_ids
    ok = references_verify(
        references=[song_reference(recording)],
        distribution="private", with_alternatives=False,
    ).verdicts[0]  # fmt: skip
    assert ok.permitted and publisher_version.pk in ok.consent_version_ids
    state = recordings_consent_state(recording_ids=[recording.pk])[recording.pk]
    assert [h.label for h in state if h.work_id] == [
        "Ada Writer (work 'Shared Theme')", "Demo Publishing (work 'Shared Theme')"
    ]  # fmt: skip


def test_the_portal_shows_the_master_holder_what_it_is_waiting_on_a_publisher_for(
    staff, co_held, work, writer_and_publisher
):
    recording = co_held["recording"]
    for member, holder in (("member_a", "holder_a"), ("member_b", "holder_b")):
        grant_all(co_held[member], co_held[holder], recording=recording)
    recording_works_set(actor=staff, recording=recording, works={work: 10_000})
    grant_all(writer_and_publisher["writer_member"], writer_and_publisher["writer"], work=work)
    (overview,) = holder_consent_overview(holder=co_held["holder_a"], recordings=[recording])
    assert not overview.effective
    assert overview.waiting_by_holder[0][0] == "Demo Publishing (work 'Shared Theme')"
    assert len(overview.waiting_by_holder[0][1]) == len(CONSENT_BIT_NAMES)


def test_only_a_works_holders_members_consent_for_it(
    co_held, work, writer_and_publisher, make_user
):
    with pytest.raises(Forbidden):
        consent_grant(
            actor=make_user(), holder=writer_and_publisher["publisher"], work=work,
            uses=["training"],
        )  # fmt: skip
    with pytest.raises(InvalidInput, match="holds no share in work"):
        consent_grant(
            actor=co_held["member_a"], holder=co_held["holder_a"], work=work, uses=["training"]
        )
    with pytest.raises(InvalidInput, match="one recording or one work"):
        consent_grant(
            actor=co_held["member_a"], holder=co_held["holder_a"],
            recording=co_held["recording"], work=work, uses=["training"],
        )  # fmt: skip
    assert not ConsentVersion.objects.filter(work=work).exists()


def test_work_consent_and_work_shares_reach_the_vector_search_masks(
    embedded_catalogue, staff, work, writer_and_publisher
):
    target = embedded_catalogue["recordings"][2]
    assert target.pk in found()
    recording_works_set(actor=staff, recording=target, works={work: 10_000})
    assert masks_of(target) == {0} and target.pk not in found()
    grant_all(writer_and_publisher["writer_member"], writer_and_publisher["writer"], work=work)
    assert target.pk not in found()  # the publisher has not consented yet
    grant_all(
        writer_and_publisher["publisher_member"], writer_and_publisher["publisher"], work=work
    )
    assert target.pk in found() and masks_of(target) == {expected_mask(target)}

    consent_revoke(
        actor=writer_and_publisher["publisher_member"], holder=writer_and_publisher["publisher"],
        work=work, distributions=["commercial"],
    )  # fmt: skip
    assert target.pk not in found(distribution="commercial")
    assert target.pk in found(distribution="private")
    # a new writer on the work has not consented: the recording drops out again
    newcomer = rights_holder_create(name="New Lyricist", kind="person", ipi="00000000001")
    work_shares_set(
        actor=staff, work=work,
        shares=[WorkShareSpec(writer_and_publisher["writer"], "composer", 4_000),
                WorkShareSpec(writer_and_publisher["publisher"], "publisher", 5_000),
                WorkShareSpec(newcomer, "lyricist", 1_000)],
    )  # fmt: skip
    assert masks_of(target) == {0} and target.pk not in found(distribution="private")


def test_masks_follow_both_sides_over_a_random_sequence_of_changes(
    embedded_catalogue, staff, work, writer_and_publisher
):
    holder, member = embedded_catalogue["holder"], embedded_catalogue["member"]
    recordings = embedded_catalogue["recordings"]
    for recording in recordings[:3]:
        recording_works_set(actor=staff, recording=recording, works={work: 10_000})
    actors = [
        (member, holder, "recording"),
        (writer_and_publisher["writer_member"], writer_and_publisher["writer"], "work"),
        (writer_and_publisher["publisher_member"], writer_and_publisher["publisher"], "work"),
    ]
    rng = random.Random(11)
    for _ in range(20):
        actor, who, side = rng.choice(actors)
        names = rng.sample(CONSENT_BIT_NAMES, rng.randint(1, 3))
        subject = {"recording": rng.choice(recordings)} if side == "recording" else {"work": work}
        change = consent_grant if rng.random() < 0.6 else consent_revoke
        change(
            actor=actor, holder=who, **subject,
            uses=[n for n in names if n in EVERYTHING["uses"]],
            distributions=[n for n in names if n in EVERYTHING["distributions"]],
        )  # fmt: skip
        for recording in recordings:
            assert masks_of(recording) == {expected_mask(recording)}
