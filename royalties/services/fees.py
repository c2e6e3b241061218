"""What a generation costs and where its fee goes, computed once for the quote a music maker
sees before generating and for the posting when the generation completes, so the two agree.

The fee is the price tier in force for the generation's most intrusive level and its
distribution, or the highest floor a holder of one of its references has in force for the
level that reference is used at, whichever is higher (a floor is the least a generation using
the recording may cost, not a minimum payout per holder; with several references the highest
floor applies, once).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from catalog.models import Distribution
from catalog.selectors import (
    recording_rights_shares,
    recordings_existing,
    recordings_work_shares,
)
from config.exceptions import InvalidInput
from royalties import selectors
from royalties.allocation import (
    FeeAllocation,
    FeeSplit,
    PaidModule,
    RecordingRights,
    RightsPart,
    allocate_fee,
    split_recording_rights,
)
from royalties.models import PriceList, SplitPolicy
from royalties.selectors import ReferenceFloor
from royalties.services.inputs import LEVEL_ORDER, _aware, currency_checked


@dataclass(frozen=True)
class ChargedReference:
    """A reference of a generation as the ledger needs it."""

    recording_id: int
    level: str
    weight: float


@dataclass(frozen=True)
class FeePlan:
    """A generation's fee and its exact division, before anything is written."""

    currency: str
    distribution: str
    level: str
    tier_minor: int
    floor: ReferenceFloor | None
    amount: int
    price_list: PriceList
    policy: SplitPolicy
    allocation: FeeAllocation
    rights: dict[int, RecordingRights] = field(repr=False)

    def direct_parts(self) -> list[tuple[int, RightsPart]]:
        """(recording id, part) of the direct payouts: per reference, per side, per holder."""
        return [
            (rid, part)
            for rid, amount in self.allocation.direct.items()
            for part in split_recording_rights(amount, self.rights[rid], self.policy.publishing_bp)
        ]


def recordings_rights(*, recording_ids) -> dict[int, RecordingRights]:
    """Both sides of each recording's rights, as the allocation needs them (three queries)."""
    ids = list(dict.fromkeys(recording_ids))
    master = recording_rights_shares(recording_ids=ids)
    works = recordings_work_shares(recording_ids=ids)
    return {rid: RecordingRights(master=master[rid], works=works[rid]) for rid in ids}


def _validate_references(references: Sequence[ChargedReference]) -> None:
    if not references:
        raise InvalidInput("a charged generation needs at least one reference")
    problems = {}
    for n, ref in enumerate(references):
        if ref.level not in LEVEL_ORDER:
            problems[str(n)] = f"unknown level '{ref.level}'"
        elif not isinstance(ref.weight, int | float) or not math.isfinite(ref.weight):
            problems[str(n)] = f"weight {ref.weight!r} is not a finite number"
        elif ref.weight < 0:
            problems[str(n)] = f"weight {ref.weight} is negative"
    if not problems and sum(ref.weight for ref in references) <= 0:
        problems["weights"] = "all reference weights are zero"
    if problems:
        raise InvalidInput("references cannot be charged", details=problems)


def fee_plan(
    *,
    at: datetime,
    distribution: str,
    references: Sequence[ChargedReference],
    training_recording_ids: Sequence[int],
    currency: str | None = None,
    modules: Sequence[PaidModule] | None = None,
) -> FeePlan:
    """The fee of a generation verified at `at`, and where each minor unit of it goes.
    `modules` are the learned modules it used (the auxiliary pool pays their training data);
    without them the generator trained on `training_recording_ids` is the only one."""
    currency = currency_checked(currency)
    at = _aware(at, "verified_at")
    if distribution not in Distribution.values:
        raise InvalidInput(f"unknown distribution '{distribution}'")
    _validate_references(references)
    recording_ids = [ref.recording_id for ref in references]
    unknown = set(recording_ids) - recordings_existing(recording_ids=recording_ids)
    if unknown:
        raise InvalidInput("unknown recordings", details={"recording_ids": sorted(unknown)})
    level = max((ref.level for ref in references), key=LEVEL_ORDER.index)
    price_list = selectors.price_list_in_force(currency=currency, at=at)
    tier = price_list.tiers.get(level=level, distribution=distribution).amount_minor
    floors = selectors.reference_floors(
        references=[(ref.recording_id, ref.level) for ref in references],
        distribution=distribution,
        currency=currency,
        at=at,
    )
    floor = max(floors, key=lambda f: f.amount_minor, default=None)
    amount = max(tier, floor.amount_minor if floor else 0)
    policy = selectors.split_policy_in_force(at=at)

    weights: dict[int, float] = {}
    for ref in references:  # a recording referenced twice is paid for its summed weight
        weights[ref.recording_id] = weights.get(ref.recording_id, 0) + ref.weight
    if modules is None:
        modules = [PaidModule("generator", "generator", tuple(training_recording_ids))]
    allocation = allocate_fee(
        amount,
        FeeSplit(policy.direct_bp, policy.tda_pool_bp, policy.auxiliary_bp, policy.platform_bp),
        {rid: w for rid, w in weights.items() if w > 0},
        modules=modules,
        module_weights=policy.auxiliary_modules,
    )
    return FeePlan(
        currency=currency,
        distribution=distribution,
        level=level,
        tier_minor=tier,
        floor=floor if floor and floor.amount_minor > tier else None,
        amount=amount,
        price_list=price_list,
        policy=policy,
        allocation=allocation,
        rights=recordings_rights(recording_ids=[*allocation.direct, *allocation.auxiliary]),
    )


@dataclass(frozen=True)
class HolderShareQuote:
    """What one holder is expected to receive directly, on one side, through one reference."""

    holder_id: int
    holder_name: str
    recording_id: int
    side: str
    work_id: int | None
    amount_minor: int


def direct_shares_quoted(plan: FeePlan) -> list[HolderShareQuote]:
    """The plan's direct payouts per holder, side and reference, largest first, with names;
    a side nobody is registered for yet is left out (it stays unallocated)."""
    parts = [(rid, part) for rid, part in plan.direct_parts() if part.holder_id and part.amount]
    names = selectors.holders_names(holder_ids={part.holder_id for _, part in parts})
    quotes = [
        HolderShareQuote(
            part.holder_id, names[part.holder_id], rid, part.side, part.work_id, part.amount
        )
        for rid, part in parts
    ]
    return sorted(quotes, key=lambda q: (-q.amount_minor, q.holder_name, q.recording_id))
