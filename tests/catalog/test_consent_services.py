"""Consent: opt-out default, unanimity, immutable history, who may change what."""

import pytest
from django.db import IntegrityError, InternalError, connection, transaction

from catalog import selectors
from catalog.models import ConsentVersion, CurrentConsent
from catalog.services.consent import (
    ConsentChange,
    consent_changes_apply,
    consent_grant,
    consent_revoke,
)
from catalog.services.rights import rights_shares_set
from config.exceptions import Forbidden, InvalidInput

pytestmark = pytest.mark.django_db


def grant(ctx, who, **kwargs):
    return consent_grant(
        actor=ctx[f"member_{who}"],
        holder=ctx[f"holder_{who}"],
        recording=ctx["recording"],
        **kwargs,
    )


def test_default_is_opt_out(co_held):
    recording = co_held["recording"]
    consent = selectors.recording_effective_consent(recording=recording)
    assert not any(consent.uses.values()) and not any(consent.distributions.values())
    assert (
        not selectors.recordings_permitting(use="song_inference").filter(pk=recording.pk).exists()
    )


def test_effective_consent_needs_every_holder(co_held):
    recording = co_held["recording"]
    grant(co_held, "a", uses=["training", "song_inference"], distributions=["private"])
    assert not selectors.recording_permits(recording=recording, use="training")

    grant(co_held, "b", uses=["training"], distributions=["private"])
    assert selectors.recording_permits(recording=recording, use="training")
    assert not selectors.recording_permits(recording=recording, use="song_inference")
    assert selectors.recording_permits(recording=recording, use="training", distribution="private")

    consent = selectors.recording_effective_consent(recording=recording)
    assert consent.uses == {
        "training": True,
        "song_inference": False,
        "parameter_inference": False,
        "audio_inference": False,
    }
    assert consent.permits("training", "private")
    assert not consent.permits("training", "commercial")


def test_distribution_is_checked_with_the_use(co_held):
    recording = co_held["recording"]
    for who in "ab":
        grant(co_held, who, uses=["song_inference"], distributions=["private", "non_commercial"])
    permitted = selectors.recordings_permitting
    assert permitted(use="song_inference", distribution="non_commercial").filter(pk=recording.pk)
    assert not permitted(use="song_inference", distribution="commercial").filter(pk=recording.pk)
    assert not permitted(use="audio_inference", distribution="private").filter(pk=recording.pk)


def test_sql_filter_and_python_effective_consent_agree(co_held, make_recording, staff):
    other = make_recording()
    rights_shares_set(actor=staff, recording=other, shares={co_held["holder_a"]: 10_000})
    consent_grant(
        actor=co_held["member_a"], holder=co_held["holder_a"], recording=other, uses=["training"]
    )
    grant(co_held, "a", uses=["training"])  # B has not granted the shared recording
    ids = set(selectors.recordings_permitting(use="training").values_list("pk", flat=True))
    assert ids == {other.pk}
    assert selectors.recording_effective_consent(recording=other).uses["training"]
    assert not selectors.recording_effective_consent(recording=co_held["recording"]).uses[
        "training"
    ]


def test_recording_without_shares_permits_nothing(make_recording):
    recording = make_recording()
    assert not selectors.recording_permits(recording=recording, use="training")


def test_revocation_is_a_new_version_and_history_is_kept(co_held):
    first = grant(co_held, "a", uses=["training", "song_inference"], distributions=["commercial"])
    second = consent_revoke(
        actor=co_held["member_a"],
        holder=co_held["holder_a"],
        recording=co_held["recording"],
        uses=["training"],
        note="no more training",
    )
    assert (first.number, second.number) == (1, 2)
    assert second.revoked == ["training"] and second.granted == []
    assert not second.training and second.song_inference and second.commercial
    first.refresh_from_db()
    assert first.training and first.granted == ["training", "song_inference", "commercial"]
    history = selectors.consent_history(holder=co_held["holder_a"], recording=co_held["recording"])
    assert [v.number for v in history] == [2, 1]
    assert history[0].changed_by == co_held["member_a"] and history[0].note == "no more training"
    current = selectors.consent_current(holder=co_held["holder_a"], recording=co_held["recording"])
    assert current == second


def test_a_change_that_changes_nothing_writes_no_version(co_held):
    first = grant(co_held, "a", uses=["training"])
    again = grant(co_held, "a", uses=["training"])
    assert again == first
    assert ConsentVersion.objects.count() == 1


def test_database_refuses_to_update_or_delete_a_consent_version(co_held):
    version = grant(co_held, "a", uses=["training"])
    with pytest.raises((IntegrityError, InternalError)), transaction.atomic():
        ConsentVersion.objects.filter(pk=version.pk).update(training=False)
    with (
        pytest.raises((IntegrityError, InternalError)),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM catalog_consentversion WHERE id = %s", [version.pk])
    version.refresh_from_db()
    assert version.training


@pytest.mark.parametrize("who", ["outsider", "staff", "member_b"])
def test_only_members_of_the_holder_may_change_its_consent(co_held, make_user, staff, who):
    actor = {"outsider": make_user(), "staff": staff, "member_b": co_held["member_b"]}[who]
    with pytest.raises(Forbidden):
        consent_grant(
            actor=actor,
            holder=co_held["holder_a"],
            recording=co_held["recording"],
            uses=["training"],
        )
    assert not ConsentVersion.objects.exists() and not CurrentConsent.objects.exists()


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"uses": ["karaoke"]}, "unknown use 'karaoke'"),
        ({"distributions": ["broadcast"]}, "unknown distribution 'broadcast'"),
        ({}, "at least one"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(co_held, kwargs, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        grant(co_held, "a", **kwargs)
    assert not ConsentVersion.objects.exists()


def test_holder_without_share_cannot_consent(co_held, make_recording):
    other = make_recording()
    with pytest.raises(InvalidInput, match="holds no share"):
        consent_grant(
            actor=co_held["member_a"],
            holder=co_held["holder_a"],
            recording=other,
            uses=["training"],
        )
    assert not ConsentVersion.objects.exists()


def test_new_co_holder_without_consent_makes_recording_opted_out(co_held, make_holder, staff):
    for who in "ab":
        grant(co_held, who, uses=["training"])
    assert selectors.recording_permits(recording=co_held["recording"], use="training")
    newcomer = make_holder("Holder C")
    rights_shares_set(
        actor=staff,
        recording=co_held["recording"],
        shares={co_held["holder_a"]: 5000, co_held["holder_b"]: 3000, newcomer: 2000},
    )
    assert not selectors.recording_permits(recording=co_held["recording"], use="training")


def test_several_recordings_change_in_one_transaction_or_not_at_all(co_held, make_recording):
    holder, member = co_held["holder_a"], co_held["member_a"]
    held = co_held["recording"]
    not_held = make_recording("Someone Else's Song")
    changes = [
        ConsentChange(held, grant=["training", "private"], revoke=[]),
        ConsentChange(not_held, grant=["training"], revoke=[]),
    ]
    with pytest.raises(InvalidInput, match="holds no share"):
        consent_changes_apply(actor=member, holder=holder, changes=changes)
    assert not ConsentVersion.objects.filter(recording=held).exists()  # the first was undone

    changed = consent_changes_apply(
        actor=member, holder=holder, changes=changes[:1], note="bulk from the portal"
    )
    assert changed == 1
    revoked = consent_changes_apply(
        actor=member,
        holder=holder,
        changes=[ConsentChange(held, grant=["commercial"], revoke=["training"])],
    )
    current = selectors.consent_current(holder=holder, recording=held)
    assert revoked == 1 and current.number == 3  # a grant and a revocation: two versions
    assert current.private and current.commercial and not current.training
