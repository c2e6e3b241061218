"""The consent mask on embedding rows: every change to what a recording permits reaches the
vector search in the same transaction, and a mask written around the services is found."""

import itertools
import random
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.db.models import Q

from catalog.models import (
    CONSENT_BIT_NAMES,
    SEARCH_INDEX_DISTRIBUTIONS,
    SEARCH_INDEX_USES,
    Distribution,
    RecordingEmbedding,
    RecordingWindowEmbedding,
    consent_bits,
)
from catalog.retrieval import selectors
from catalog.selectors import consent_requirement, recording_effective_consent
from catalog.services.consent import consent_grant, consent_revoke
from catalog.services.consent_masks import consent_masks_refresh, consent_masks_stale
from catalog.services.rights import rights_shares_set

pytestmark = pytest.mark.django_db
EVERYTHING = ("calm classical music", "fast electronic music with drums", "music")


def found(level: str = "song", distribution: str = "commercial") -> set[int]:
    """Every recording the text search returns for a few prompts (the catalogue has six)."""
    return {
        hit.recording.pk
        for prompt in EVERYTHING
        for hit in selectors.retrieve_by_text(
            prompt=prompt, level=level, distribution=distribution, k=6
        ).hits
    }


def masks_of(recording) -> set[int]:
    windows = RecordingWindowEmbedding.objects.filter(recording=recording)
    tracks = RecordingEmbedding.objects.filter(recording=recording)
    return set(windows.values_list("consent_mask", flat=True)) | set(
        tracks.values_list("consent_mask", flat=True)
    )


def expected_mask(recording) -> int:
    effective = recording_effective_consent(recording=recording)
    permitted = {**effective.uses, **effective.distributions}
    return consent_bits(name for name in CONSENT_BIT_NAMES if permitted[name])


def test_bits_are_one_per_use_and_distribution_and_requirements_combine_them():
    assert len(CONSENT_BIT_NAMES) == len(set(CONSENT_BIT_NAMES)) == 7
    assert consent_bits(["training"]) == 1 and consent_bits(CONSENT_BIT_NAMES) == 0b1111111
    requirement = consent_requirement(use="song_inference", distribution="commercial")
    assert requirement.mask == consent_bits(["song_inference", "commercial"])
    assert consent_requirement(use="training").mask == consent_bits(["training"])


def test_each_levels_use_at_each_distribution_has_a_partial_index_with_its_predicate():
    indexes = {i.name: i for i in RecordingWindowEmbedding._meta.indexes}
    for level, distribution in itertools.product(["song", "parameter", "audio"], Distribution):
        requirement = consent_requirement(
            use=selectors.use_for_level(level), distribution=distribution
        )
        assert requirement.has_search_index
        use_code = SEARCH_INDEX_USES[requirement.use]
        index = indexes[f"window_hnsw_{use_code}_{SEARCH_INDEX_DISTRIBUTIONS[distribution]}"]
        assert index.condition == Q(consent_mask__in=requirement.masks)
    assert not consent_requirement(use="training").has_search_index


def test_embedding_rows_carry_their_recordings_consent_from_the_start(embedded_catalogue):
    for recording in embedded_catalogue["recordings"]:
        assert masks_of(recording) == {expected_mask(recording)}
    everything_but_training = consent_bits(n for n in CONSENT_BIT_NAMES if n != "training")
    assert expected_mask(embedded_catalogue["recordings"][0]) == everything_but_training


def test_a_revocation_reaches_the_search_inside_its_own_transaction(embedded_catalogue):
    target = embedded_catalogue["recordings"][1]
    holder, member = embedded_catalogue["holder"], embedded_catalogue["member"]
    assert target.pk in found()
    with transaction.atomic():
        consent_revoke(actor=member, holder=holder, recording=target, distributions=["commercial"])
        # not yet committed: the search in this transaction already leaves it out
        assert target.pk not in found(distribution="commercial")
        assert target.pk in found(distribution="non_commercial")
        assert masks_of(target) == {expected_mask(target)}
        transaction.set_rollback(True)
    assert target.pk in found()  # rolled back with the revocation
    consent_grant(actor=member, holder=holder, recording=target, uses=["training"])
    assert masks_of(target) == {expected_mask(target)} and target.pk in found()


def test_a_new_co_holder_must_consent_before_the_recording_appears_again(
    embedded_catalogue, make_holder, make_user, staff
):
    target = embedded_catalogue["recordings"][3]
    holder = embedded_catalogue["holder"]
    publisher_member = make_user("publisher-member")
    publisher = make_holder("Co Publisher", member=publisher_member)
    rights_shares_set(actor=staff, recording=target, shares={holder: 6_000, publisher: 4_000})
    assert masks_of(target) == {0} and target.pk not in found()
    consent_grant(
        actor=publisher_member, holder=publisher, recording=target, uses=["song_inference"]
    )
    assert target.pk not in found()  # the distribution is not granted by the publisher yet
    consent_grant(
        actor=publisher_member, holder=publisher, recording=target, distributions=["commercial"]
    )
    assert target.pk in found() and target.pk not in found(level="audio")
    assert masks_of(target) == {consent_bits(["song_inference", "commercial"])}


def test_masks_follow_effective_consent_over_a_random_sequence_of_changes(embedded_catalogue):
    holder, member = embedded_catalogue["holder"], embedded_catalogue["member"]
    recordings = embedded_catalogue["recordings"]
    rng = random.Random(7)
    for _ in range(25):
        recording = rng.choice(recordings)
        names = rng.sample(CONSENT_BIT_NAMES, rng.randint(1, 3))
        uses = [n for n in names if n in dict.fromkeys(CONSENT_BIT_NAMES[:4])]
        distributions = [n for n in names if n not in uses]
        change = consent_grant if rng.random() < 0.5 else consent_revoke
        change(
            actor=member, holder=holder, recording=recording, uses=uses,
            distributions=distributions,
        )  # fmt: skip
        assert masks_of(recording) == {expected_mask(recording)}
    for level, distribution in itertools.product(["song", "audio"], ["private", "commercial"]):
        permitted = set(
            consent_requirement(use=selectors.use_for_level(level), distribution=distribution)
            .recordings()
            .values_list("pk", flat=True)
        )
        assert found(level, distribution) == permitted


def test_a_mask_written_around_the_services_is_found_and_repaired(embedded_catalogue):
    target = embedded_catalogue["recordings"][0]
    holder, member = embedded_catalogue["holder"], embedded_catalogue["member"]
    consent_revoke(actor=member, holder=holder, recording=target, uses=["song_inference"])
    assert consent_masks_stale() == []
    RecordingWindowEmbedding.objects.filter(recording=target).update(consent_mask=0b1111111)
    assert consent_masks_stale() == [target.pk]
    with pytest.raises(CommandError, match="1 recordings have stale consent masks"):
        call_command("verify_consent_masks", stdout=StringIO())
    out = StringIO()
    call_command("verify_consent_masks", "--repair", stdout=out)
    assert "repaired 2 embedding rows of 1 recordings" in out.getvalue()  # its two windows
    assert masks_of(target) == {expected_mask(target)} and consent_masks_stale() == []
    assert consent_masks_refresh() == 0  # nothing else was wrong
    assert target.pk not in found()
