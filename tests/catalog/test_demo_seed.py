"""The demo seed gives a real mix of consent states through the consent services."""

import pytest

from catalog import selectors
from catalog.demo.seed import LABEL_NAME, PUBLISHER_IPI, PUBLISHER_NAME, demo_rights_seed
from catalog.models import (
    CONSENT_BIT_NAMES,
    ConsentVersion,
    CurrentConsent,
    RecordingWork,
    RightsHolder,
    RightsShare,
    Use,
)

pytestmark = pytest.mark.django_db


def test_demo_seed_mixes_consent_states_and_is_idempotent(make_recording):
    recordings = [make_recording(artist=f"Artist {i % 3}") for i in range(20)]
    counts = demo_rights_seed()
    assert counts["recordings"] == 20

    label = RightsHolder.objects.get(name=LABEL_NAME)
    assert label.members.filter(username="holder").exists()
    for recording in recordings:
        shares = dict(
            RightsShare.objects.filter(recording=recording).values_list(
                "holder__name", "basis_points"
            )
        )
        assert shares == {LABEL_NAME: 3000, recording.artist.name: 7000}

    def permitted(use, distribution=None):
        return selectors.recordings_permitting(use=use, distribution=distribution).count()

    assert 0 < permitted("training") < 20
    assert 0 < permitted("song_inference") < 20
    training_only = [
        r for r in recordings
        if selectors.recording_permits(recording=r, use="training")
        and not selectors.recording_permits(recording=r, use="song_inference")
    ]  # fmt: skip
    nothing = [
        r
        for r in recordings
        if not any(selectors.recording_effective_consent(recording=r).uses.values())
    ]
    assert training_only and nothing
    # Unanimity is visible: some recordings where the label opted in to everything but the
    # artist only to song-level inference, so parameter-level inference is not permitted.
    assert permitted("song_inference") > permitted("parameter_inference")
    assert ConsentVersion.objects.filter(number=2, revoked=["commercial"]).exists()

    versions = ConsentVersion.objects.count()
    assert demo_rights_seed() == {"recordings": 0, "works": 0, "consent_versions": 0}
    assert ConsentVersion.objects.count() == versions


def masters_agree(recording) -> dict[str, bool]:
    """The effective consent from the master holders alone (what it was before works)."""
    holders = RightsShare.objects.filter(recording=recording).values_list("holder", flat=True)
    versions = [
        CurrentConsent.objects.filter(recording=recording, holder=h).first() for h in holders
    ]
    return {
        name: bool(versions) and all(v is not None and v.version.permits(name) for v in versions)
        for name in CONSENT_BIT_NAMES
    }


def test_demo_works_are_written_by_the_artists_and_change_no_effective_consent(make_recording):
    recordings = [make_recording(artist=f"Artist {i % 3}") for i in range(20)]
    counts = demo_rights_seed()
    assert counts["works"] == 20

    publisher = RightsHolder.objects.get(name=PUBLISHER_NAME)
    assert (publisher.kind, publisher.ipi) == ("organisation", PUBLISHER_IPI)
    assert publisher.members.filter(username="holder").exists()
    in_seed_order = sorted(recordings, key=lambda r: r.content_sha256)
    co_published = {in_seed_order[1].pk, in_seed_order[11].pk}  # the 2nd, 12th, ...
    for recording in recordings:
        (link,) = RecordingWork.objects.filter(recording=recording).select_related("work")
        assert link.basis_points == 10_000 and link.work.title == recording.title
        shares = {
            s.holder.name: (s.role, s.basis_points)
            for s in link.work.shares.select_related("holder")
        }
        if recording.pk in co_published:
            assert shares == {
                recording.artist.name: ("composer", 5_000),
                PUBLISHER_NAME: ("publisher", 5_000),
            }
            granted = CurrentConsent.objects.get(work=link.work, holder=publisher).version
            assert all(granted.permits(n) for n in CONSENT_BIT_NAMES)
        else:
            assert shares == {recording.artist.name: ("composer", 10_000)}

        # the writer's say on the work is the artist's say on the recording ...
        writer_version = CurrentConsent.objects.get(
            work=link.work, holder__name=recording.artist.name
        ).version
        master_version = CurrentConsent.objects.get(
            recording=recording, holder__name=recording.artist.name
        ).version
        assert [writer_version.permits(n) for n in CONSENT_BIT_NAMES] == [
            master_version.permits(n) for n in CONSENT_BIT_NAMES
        ]
        # ... so the works leave the effective consent where the master holders put it
        effective = selectors.recording_effective_consent(recording=recording)
        assert {**effective.uses, **effective.distributions} == masters_agree(recording)
    for use in Use.values:
        sql_side = set(selectors.recordings_permitting(use=use).values_list("pk", flat=True))
        assert sql_side == {r.pk for r in recordings if masters_agree(r)[use]}
    # the mix is still a mix (the works did not open or close everything)
    assert 0 < len(selectors.recordings_permitting(use="training")) < 20

    versions = ConsentVersion.objects.count()
    assert demo_rights_seed() == {"recordings": 0, "works": 0, "consent_versions": 0}
    assert ConsentVersion.objects.count() == versions
    assert RecordingWork.objects.count() == 20
