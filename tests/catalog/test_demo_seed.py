"""The demo seed gives a real mix of consent states through the consent services."""

import pytest

from catalog import selectors
from catalog.demo.seed import LABEL_NAME, demo_rights_seed
from catalog.models import ConsentVersion, RightsHolder, RightsShare

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
    assert demo_rights_seed() == {"recordings": 0, "consent_versions": 0}
    assert ConsentVersion.objects.count() == versions
