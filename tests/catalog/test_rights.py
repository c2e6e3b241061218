"""Rights shares sum to exactly 10,000 basis points; ISRC and IPI formats are enforced."""

import pytest
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.models import RightsHolder, RightsShare
from catalog.services.rights import rights_holder_create, rights_shares_set
from config.exceptions import Forbidden, InvalidInput

pytestmark = pytest.mark.django_db


def shares_of(recording):
    return {s.holder.name: s.basis_points for s in RightsShare.objects.filter(recording=recording)}


def test_shares_must_sum_to_exactly_10000_and_bad_input_changes_nothing(co_held, staff):
    recording = co_held["recording"]
    before = shares_of(recording)
    for bad in (
        {co_held["holder_a"]: 7000, co_held["holder_b"]: 2999},
        {co_held["holder_a"]: 10_001},
    ):
        with pytest.raises(InvalidInput):
            rights_shares_set(actor=staff, recording=recording, shares=bad)
    with pytest.raises(InvalidInput, match="between 1 and"):
        rights_shares_set(
            actor=staff,
            recording=recording,
            shares={co_held["holder_a"]: 10_500, co_held["holder_b"]: -500},
        )
    assert shares_of(recording) == before == {"Holder A": 7000, "Holder B": 3000}


def test_only_staff_set_shares(co_held):
    with pytest.raises(Forbidden):
        rights_shares_set(
            actor=co_held["member_a"],
            recording=co_held["recording"],
            shares={co_held["holder_a"]: 10_000},
        )
    assert shares_of(co_held["recording"]) == {"Holder A": 7000, "Holder B": 3000}


def test_database_enforces_the_sum_even_without_the_service(co_held):
    with pytest.raises(IntegrityError, match="sum to 7000"), transaction.atomic():
        RightsShare.objects.filter(holder=co_held["holder_b"]).delete()
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the trigger is deferred to commit
    assert shares_of(co_held["recording"]) == {"Holder A": 7000, "Holder B": 3000}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(parts=st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=4))
def test_any_split_is_accepted_exactly_when_it_sums_to_10000(make_recording, staff, parts):
    recording = make_recording()
    holders = [
        RightsHolder.objects.get_or_create(name=f"Prop {i}", kind=RightsHolder.Kind.PERSON)[0]
        for i in range(len(parts))
    ]
    shares = dict(zip(holders, parts, strict=True))
    if sum(parts) == 10_000:
        rights_shares_set(actor=staff, recording=recording, shares=shares)
        assert (
            sum(
                RightsShare.objects.filter(recording=recording).values_list(
                    "basis_points", flat=True
                )
            )
            == 10_000
        )
    else:
        with pytest.raises(InvalidInput):
            rights_shares_set(actor=staff, recording=recording, shares=shares)
        assert not RightsShare.objects.filter(recording=recording).exists()


@pytest.mark.parametrize("isrc", ["US-RC1-76-07839", "USRC1760783", "usrc17607839", "USRC17A07839"])
def test_invalid_isrc_is_rejected_by_validation_and_by_the_database(make_recording, isrc):
    recording = make_recording()
    recording.isrc = isrc
    with pytest.raises(ValidationError, match="ISRC"):
        recording.full_clean()
    with pytest.raises((IntegrityError, DataError)), transaction.atomic():
        recording.save()


def test_valid_isrc_is_accepted(make_recording):
    recording = make_recording(isrc="USRC17607839")
    recording.full_clean()
    assert recording.isrc == "USRC17607839"


def test_ipi_must_be_9_to_11_digits():
    with pytest.raises(InvalidInput):
        rights_holder_create(name="Bad IPI", kind="person", ipi="12AB")
    holder = rights_holder_create(name="Good IPI", kind="organisation", ipi="00052210040")
    assert holder.ipi == "00052210040"
    assert not RightsHolder.objects.filter(name="Bad IPI").exists()
