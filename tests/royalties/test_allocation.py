"""Money splitting: conserved to the minor unit, never negative, deterministic (property tests
over random fees, weights, rights shares and TDA score vectors)."""

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from royalties.allocation import (
    AllocationError,
    FeeSplit,
    allocate_fee,
    split_by_rights_shares,
    split_largest_remainder,
)

amounts = st.integers(min_value=0, max_value=10**12)
float_weights = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
weight_maps = st.dictionaries(
    st.integers(1, 10_000), float_weights, min_size=1, max_size=40
).filter(lambda w: sum(w.values()) > 0)


@st.composite
def basis_points(draw, parts: int) -> list[int]:
    """`parts` non-negative integers summing to 10,000."""
    cuts = sorted(draw(st.lists(st.integers(0, 10_000), min_size=parts - 1, max_size=parts - 1)))
    bounds = [0, *cuts, 10_000]
    return [b - a for a, b in zip(bounds, bounds[1:], strict=False)]


@st.composite
def rights_shares(draw) -> dict[int, int]:
    n = draw(st.integers(1, 6))
    values = draw(basis_points(n))
    return {holder: bp for holder, bp in enumerate(values, 1) if bp} or {1: 10_000}


@given(amounts, weight_maps)
def test_split_conserves_and_is_never_negative(total, weights):
    parts = split_largest_remainder(total, weights)
    assert sum(parts.values()) == total
    assert all(p >= 0 for p in parts.values())
    assert parts.keys() == weights.keys()


@given(amounts, weight_maps)
def test_each_part_is_within_one_unit_of_its_exact_quota(total, weights):
    parts = split_largest_remainder(total, weights)
    weight_sum = sum(Fraction(w) for w in weights.values())
    for key, w in weights.items():
        quota = total * Fraction(w) / weight_sum
        assert math.floor(quota) <= parts[key] <= math.ceil(quota)


@given(amounts, basis_points(4), weight_maps, st.lists(st.integers(1, 500), max_size=30))
def test_fee_allocation_conserves_the_fee(fee, split, weights, training):
    allocation = allocate_fee(fee, FeeSplit(*split), weights, training)
    assert allocation.total() == fee
    assert min([0, *allocation.direct.values(), *allocation.auxiliary.values()]) == 0
    assert allocation.tda_pool >= 0 and allocation.platform >= 0 and allocation.unallocated >= 0
    if training:
        assert set(allocation.auxiliary) == set(training) and allocation.unallocated == 0


@given(amounts, weight_maps, st.data())
def test_tda_pool_through_rights_shares_reaches_holders_exactly(pool, scores, data):
    by_recording = split_largest_remainder(pool, scores)
    paid = 0
    for recording, amount in by_recording.items():
        shares = data.draw(rights_shares(), label=f"shares of {recording}")
        by_holder = split_by_rights_shares(amount, shares)
        assert sum(by_holder.values()) == amount
        assert all(v >= 0 for v in by_holder.values())
        paid += amount
    assert paid == pool


def test_ties_go_to_the_first_key_and_splits_are_deterministic():
    assert split_largest_remainder(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert split_largest_remainder(10, {"c": 1, "b": 1, "a": 1}) == {"c": 4, "b": 3, "a": 3}
    assert split_largest_remainder(100, {"x": 0.7, "y": 0.3}) == {"x": 70, "y": 30}
    assert split_largest_remainder(1, {"x": 1, "y": 3}) == {"x": 0, "y": 1}


def test_the_documented_example_fee():
    # 10.00 at 60/20/10/10; references weighted 2:1; three training recordings
    allocation = allocate_fee(1000, FeeSplit(6000, 2000, 1000, 1000), {7: 2, 8: 1}, [1, 2, 3])
    assert allocation.direct == {7: 400, 8: 200}
    assert allocation.tda_pool == 200 and allocation.platform == 100
    assert allocation.auxiliary == {1: 34, 2: 33, 3: 33}


@pytest.mark.parametrize(
    "total, weights, message",
    [
        (-1, {"a": 1}, "non-negative integer"),
        (1.5, {"a": 1}, "non-negative integer"),
        (10, {}, "empty or all zero"),
        (10, {"a": 0, "b": 0}, "empty or all zero"),
        (10, {"a": -1, "b": 2}, "negative"),
        (10, {"a": float("nan")}, "nan"),
        (10, {"a": float("inf")}, "inf"),
        (10, {"a": "x"}, "not a number"),
    ],
)
def test_bad_inputs_are_refused(total, weights, message):
    with pytest.raises(AllocationError, match=message):
        split_largest_remainder(total, weights)


def test_split_policies_must_sum_to_10000():
    with pytest.raises(AllocationError, match="sum to 9999"):
        FeeSplit(5999, 2000, 1000, 1000)
    with pytest.raises(AllocationError, match="non-negative"):
        FeeSplit(11000, -1000, 0, 0)
    with pytest.raises(AllocationError, match="not 10000"):
        split_by_rights_shares(100, {1: 5000})
    assert split_by_rights_shares(100, {}) == {}


@given(amounts, rights_shares(), st.randoms())
def test_holder_splits_do_not_depend_on_the_order_shares_arrive_in(amount, shares, rnd):
    shuffled = list(shares.items())
    rnd.shuffle(shuffled)
    assert split_by_rights_shares(amount, dict(shuffled)) == split_by_rights_shares(amount, shares)


def test_a_fee_whose_parts_do_not_sum_is_refused_not_posted(monkeypatch):
    """The conservation check is a typed error (an `assert` vanishes under `python -O`)."""
    from royalties import allocation

    real = allocation.split_largest_remainder

    def off_by_one(total, weights):
        parts = real(total, weights)
        first = next(iter(parts))
        return {**parts, first: parts[first] + 1}

    monkeypatch.setattr(allocation, "split_largest_remainder", off_by_one)
    with pytest.raises(allocation.AllocationError, match="not 1000"):
        allocation.allocate_fee(1000, FeeSplit(6000, 2000, 1000, 1000), {1: 1}, [2, 3])
