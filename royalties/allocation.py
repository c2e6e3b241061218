"""Exact money splitting. Plain module (no Django): integers in, integers out.

Money is integer minor units. Every split uses the largest-remainder method, so the parts add
up to the whole exactly and no part is negative; ties in the remainders go to the key that came
first, so a split is deterministic for the same input order. Weights may be ints, Fractions or
floats (reference weights, TDA shares); floats are taken at their exact binary value.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
TOTAL_BASIS_POINTS = 10_000


class AllocationError(ValueError):
    """Inputs that cannot be split: negative or non-finite amounts or weights, no weight."""


def _exact(weight: int | float | Fraction, key: Hashable) -> Fraction:
    if isinstance(weight, bool):
        raise AllocationError(f"weight of {key!r} is a boolean, not a number")
    if isinstance(weight, float) and not math.isfinite(weight):
        raise AllocationError(f"weight of {key!r} is {weight}")
    try:
        value = Fraction(weight)
    except (TypeError, ValueError) as exc:
        raise AllocationError(f"weight of {key!r} is not a number: {weight!r}") from exc
    if value < 0:
        raise AllocationError(f"weight of {key!r} is negative: {weight}")
    return value


def split_largest_remainder(
    total: int, weights: Mapping[K, int | float | Fraction]
) -> dict[K, int]:
    """Split `total` minor units in proportion to `weights`; parts sum to `total` exactly."""
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise AllocationError(f"amount must be a non-negative integer of minor units: {total!r}")
    exact = {key: _exact(weight, key) for key, weight in weights.items()}
    weight_sum = sum(exact.values(), Fraction(0))
    if weight_sum == 0:
        raise AllocationError("nothing to split by: the weights are empty or all zero")
    quotas = {key: total * w / weight_sum for key, w in exact.items()}
    parts = {key: math.floor(q) for key, q in quotas.items()}
    left = total - sum(parts.values())
    order = list(quotas)  # insertion order breaks ties
    by_remainder = sorted(order, key=lambda key: (-(quotas[key] - parts[key]), order.index(key)))
    for key in by_remainder[:left]:
        parts[key] += 1
    return parts


@dataclass(frozen=True)
class FeeSplit:
    """How a generation's fee is divided, in basis points of the fee (sum 10,000)."""

    direct_bp: int
    tda_pool_bp: int
    auxiliary_bp: int
    platform_bp: int

    def __post_init__(self) -> None:
        parts = self.as_dict()
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in parts.values()):
            raise AllocationError(f"split parts must be non-negative integers: {parts}")
        if sum(parts.values()) != TOTAL_BASIS_POINTS:
            raise AllocationError(
                f"split parts sum to {sum(parts.values())} basis points, not {TOTAL_BASIS_POINTS}"
            )

    def as_dict(self) -> dict[str, int]:
        return {
            "direct": self.direct_bp,
            "tda_pool": self.tda_pool_bp,
            "auxiliary": self.auxiliary_bp,
            "platform": self.platform_bp,
        }


@dataclass(frozen=True)
class PaidModule:
    """A learned module a generation used, whose training data the auxiliary pool pays
    (seed 004 section 7): the generator, the encoder that embedded its references and prompt,
    the text tower... A module trained outside the platform is `external`: its part goes to a
    disclosed account for the unknown creators of its data."""

    label: str  # e.g. "generator default-dit@7e6fe6dc2184"
    kind: str  # the split policy weighs modules by kind
    training_recordings: tuple[int, ...] = ()
    external: bool = False


@dataclass(frozen=True)
class ModulePart:
    """One module's part of the auxiliary pool: flat over its training recordings, or to
    external creators, or unallocated when the module's training set is not known."""

    module: PaidModule
    amount: int
    by_recording: dict[int, int]
    external: int
    unallocated: int


@dataclass(frozen=True)
class FeeAllocation:
    """A fee divided into its destinations. `direct` is per recording; the auxiliary pool is
    per module (`modules`); what has nobody to go to is `unallocated`."""

    fee: int
    direct: dict[int, int]
    tda_pool: int
    modules: list[ModulePart]
    platform: int
    unallocated: int  # the auxiliary pool when no module is weighted

    @property
    def auxiliary(self) -> dict[int, int]:
        """Auxiliary amounts per recording, summed over the modules it trained."""
        summed: dict[int, int] = {}
        for part in self.modules:
            for rid, amount in part.by_recording.items():
                summed[rid] = summed.get(rid, 0) + amount
        return summed

    def total(self) -> int:
        return (
            sum(self.direct.values())
            + self.tda_pool
            + sum(part.amount for part in self.modules)
            + self.platform
            + self.unallocated
        )


def _module_part(module: PaidModule, amount: int) -> ModulePart:
    training = list(dict.fromkeys(module.training_recordings))
    if module.external:
        return ModulePart(module, amount, {}, amount, 0)
    if not training:
        return ModulePart(module, amount, {}, 0, amount)
    return ModulePart(
        module, amount, split_largest_remainder(amount, dict.fromkeys(training, 1)), 0, 0
    )


def allocate_fee(
    fee: int,
    split: FeeSplit,
    reference_weights: Mapping[int, int | float | Fraction],
    training_recordings: Sequence[int] = (),
    *,
    modules: Sequence[PaidModule] | None = None,
    module_weights: Mapping[str, int] | None = None,
) -> FeeAllocation:
    """Divide one generation's fee: the direct part by reference weight per recording, the
    TDA pool and the platform part as single amounts, and the auxiliary part over the
    modules the generation used by their kind's weight (renormalised over the modules
    present), each module's part flat over the recordings it was trained on. Without
    `modules`, the generator trained on `training_recordings` is the only module."""
    if modules is None:
        modules = [PaidModule("generator", "generator", tuple(training_recordings))]
        module_weights = {"generator": 1}
    weights = module_weights or {}
    parts = split_largest_remainder(fee, split.as_dict())
    direct = split_largest_remainder(parts["direct"], reference_weights)
    weighted = {n: weights.get(m.kind, 0) for n, m in enumerate(modules) if weights.get(m.kind)}
    module_parts, unallocated = [], parts["auxiliary"]
    if weighted:
        amounts = split_largest_remainder(parts["auxiliary"], weighted)
        module_parts = [_module_part(modules[n], amount) for n, amount in amounts.items()]
        unallocated = 0
    allocation = FeeAllocation(
        fee=fee,
        direct=direct,
        tda_pool=parts["tda_pool"],
        modules=module_parts,
        platform=parts["platform"],
        unallocated=unallocated,
    )
    if allocation.total() != fee:  # largest remainder guarantees it; never post if it did not
        raise AllocationError(f"the fee's parts sum to {allocation.total()}, not {fee}")
    return allocation


def split_by_rights_shares(amount: int, shares: Mapping[int, int]) -> dict[int, int]:
    """A recording's amount to its holders by basis points; {} when it has no shares.
    Remainder ties go to the lowest holder id, whatever order the shares came in."""
    if not shares:
        return {}
    if sum(shares.values()) != TOTAL_BASIS_POINTS:
        raise AllocationError(f"rights shares sum to {sum(shares.values())}, not 10000")
    return split_largest_remainder(amount, dict(sorted(shares.items())))


# --- master and publishing sides ---------------------------------------------------------------

MASTER, PUBLISHING = "master", "publishing"


@dataclass(frozen=True)
class RecordingRights:
    """Who is paid for a recording: its master holders (holder id -> basis points) and, for
    the publishing side, each work it embodies (work id -> (link basis points, holder id ->
    basis points of the work))."""

    master: Mapping[int, int]
    works: Mapping[int, tuple[int, Mapping[int, int]]]


@dataclass(frozen=True)
class RightsPart:
    """Part of a recording's amount: to a holder (or to nobody yet, holder None), on a side,
    through a work on the publishing side."""

    side: str
    holder_id: int | None
    amount: int
    work_id: int | None = None


def split_recording_rights(
    amount: int, rights: RecordingRights, publishing_bp: int
) -> list[RightsPart]:
    """A recording's amount over both sides of the song: the publishing part (`publishing_bp`
    of 10,000) over the works it embodies by their links, then over each work's writers and
    publishers by share; the master part over the master holders by share. A side with nobody
    to pay (no master shares, no registered work) is one part with holder None (unallocated,
    kept against the recording until someone claims it). The parts sum to `amount` exactly."""
    if isinstance(publishing_bp, bool) or not 0 <= publishing_bp <= TOTAL_BASIS_POINTS:
        raise AllocationError(f"publishing part must be 0..10000 basis points: {publishing_bp!r}")
    sides = split_largest_remainder(
        amount, {MASTER: TOTAL_BASIS_POINTS - publishing_bp, PUBLISHING: publishing_bp}
    )
    parts: list[RightsPart] = []
    by_holder = split_by_rights_shares(sides[MASTER], rights.master)
    if by_holder:
        parts += [RightsPart(MASTER, h, a) for h, a in by_holder.items()]
    else:
        parts.append(RightsPart(MASTER, None, sides[MASTER]))
    if not rights.works:
        parts.append(RightsPart(PUBLISHING, None, sides[PUBLISHING]))
    else:
        links = {work_id: link_bp for work_id, (link_bp, _) in sorted(rights.works.items())}
        if sum(links.values()) != TOTAL_BASIS_POINTS:
            raise AllocationError(f"work links sum to {sum(links.values())}, not 10000")
        for work_id, work_amount in split_largest_remainder(sides[PUBLISHING], links).items():
            holders = split_by_rights_shares(work_amount, rights.works[work_id][1])
            if not holders:
                parts.append(RightsPart(PUBLISHING, None, work_amount, work_id))
            parts += [RightsPart(PUBLISHING, h, a, work_id) for h, a in holders.items()]
    if sum(p.amount for p in parts) != amount:  # never post a split that does not add up
        raise AllocationError(f"rights parts sum to {sum(p.amount for p in parts)}, not {amount}")
    return parts
