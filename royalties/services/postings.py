"""Ledger postings of a generation: the fee when it completes, the TDA pool when its
training-time attribution settles. Idempotent per generation and stage."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog.models import Distribution
from catalog.selectors import (
    recording_rights_shares,
    recordings_existing,
    recordings_work_shares,
)
from config.exceptions import Conflict, InvalidInput, NotFound
from royalties import selectors
from royalties.allocation import (
    AllocationError,
    FeeSplit,
    RecordingRights,
    allocate_fee,
    split_largest_remainder,
)
from royalties.models import (
    Account,
    Component,
    LedgerTransaction,
)
from royalties.services.holds import hold_posting, live_holds
from royalties.services.inputs import LEVEL_ORDER, _aware, currency_checked
from royalties.services.posting import Posting

# --- postings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChargedReference:
    """A reference of a completed generation as the ledger needs it."""

    recording_id: int
    level: str
    weight: float


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


def generation_fee_post(
    *,
    generation_ref: str,
    verified_at: datetime,
    distribution: str,
    references: Sequence[ChargedReference],
    training_recording_ids: Sequence[int],
    currency: str | None = None,
) -> LedgerTransaction:
    """Charge a completed generation once (a second call returns the first posting)."""
    key = f"generation:{generation_ref}:fee"
    existing = LedgerTransaction.objects.filter(key=key).first()
    if existing:
        return existing
    currency = currency_checked(currency)
    verified_at = _aware(verified_at, "verified_at")
    if distribution not in Distribution.values:
        raise InvalidInput(f"unknown distribution '{distribution}'")
    _validate_references(references)
    recording_ids = [ref.recording_id for ref in references]
    unknown = set(recording_ids) - recordings_existing(recording_ids=recording_ids)
    if unknown:
        raise InvalidInput("unknown recordings", details={"recording_ids": sorted(unknown)})
    level = max((ref.level for ref in references), key=LEVEL_ORDER.index)
    price_list = selectors.price_list_in_force(currency=currency, at=verified_at)
    amount = price_list.tiers.get(level=level, distribution=distribution).amount_minor
    policy = selectors.split_policy_in_force(at=verified_at)

    weights: dict[int, float] = {}
    for ref in references:  # a recording referenced twice is paid for its summed weight
        weights[ref.recording_id] = weights.get(ref.recording_id, 0) + ref.weight
    allocation = allocate_fee(
        amount,
        FeeSplit(policy.direct_bp, policy.tda_pool_bp, policy.auxiliary_bp, policy.platform_bp),
        {rid: w for rid, w in weights.items() if w > 0},
        training_recording_ids,
    )
    rights = recordings_rights(recording_ids=[*allocation.direct, *allocation.auxiliary])
    try:
        with transaction.atomic():
            tx = LedgerTransaction.objects.create(
                key=key,
                kind=LedgerTransaction.Kind.GENERATION_FEE,
                generation_ref=generation_ref,
                currency=currency,
                booked_at=timezone.now(),
                memo=f"{level}-level generation, {distribution}, verified {verified_at:%Y-%m-%d}",
                price_list=price_list,
                split_policy=policy,
                training_recording_ids=list(dict.fromkeys(training_recording_ids)),
            )
            posting = Posting(tx, level=level, distribution=distribution)
            posting.add(Account.Kind.RECEIVABLE, amount, Component.FEE)
            for rid, part in allocation.direct.items():
                posting.credit_recording(
                    part, rid, rights[rid], policy.publishing_bp, Component.ITA
                )
            for rid, part in allocation.auxiliary.items():
                posting.credit_recording(
                    part, rid, rights[rid], policy.publishing_bp, Component.AUXILIARY
                )
            posting.add(Account.Kind.PENDING_TDA_POOL, -allocation.tda_pool, Component.TDA_POOL)
            posting.add(Account.Kind.PLATFORM_REVENUE, -allocation.platform, Component.PLATFORM)
            posting.add(Account.Kind.UNALLOCATED, -allocation.unallocated, Component.UNALLOCATED)
            posting.save()
    except IntegrityError:  # the same generation posted concurrently: keep the first
        existing = LedgerTransaction.objects.filter(key=key).first()
        if existing is None:
            raise
        return existing
    return tx


def recordings_rights(*, recording_ids) -> dict[int, RecordingRights]:
    """Both sides of each recording's rights, as the allocation needs them (three queries)."""
    ids = list(dict.fromkeys(recording_ids))
    master = recording_rights_shares(recording_ids=ids)
    works = recordings_work_shares(recording_ids=ids)
    return {rid: RecordingRights(master=master[rid], works=works[rid]) for rid in ids}


def tda_pool_settle(*, generation_ref: str, shares: Mapping[int, float]) -> LedgerTransaction:
    """Move a generation's pending TDA pool to the holders of the training recordings, by
    the generation's normalised attribution shares, then by rights shares. Idempotent: while
    a settlement stands, settling again returns it; reverse it first to settle anew."""
    settlements = LedgerTransaction.objects.filter(
        kind=LedgerTransaction.Kind.TDA_SETTLEMENT, generation_ref=generation_ref
    )
    live = settlements.filter(reversed_by__isnull=True).first()
    if live:
        return live
    fee = LedgerTransaction.objects.filter(key=f"generation:{generation_ref}:fee").first()
    if fee is None:
        raise NotFound(f"generation {generation_ref} has not been charged")
    if hasattr(fee, "reversed_by"):
        raise Conflict(f"the fee of generation {generation_ref} was reversed; nothing to settle")
    # a settlement that was reversed (wrong scores) is followed by a new one under a new key
    previous = settlements.count()
    key = f"generation:{generation_ref}:tda" + (f":{previous + 1}" if previous else "")
    pool = -sum(
        fee.entries.filter(component=Component.TDA_POOL).values_list("amount_minor", flat=True)
    )
    unknown = set(shares) - recordings_existing(recording_ids=shares)
    if unknown:
        raise InvalidInput("unknown recordings", details={"recording_ids": sorted(unknown)})
    outside = set(shares) - set(fee.training_recording_ids)
    if outside:
        raise InvalidInput(
            "TDA shares name recordings outside the model's training set",
            details={"recording_ids": sorted(outside)},
        )
    try:
        by_recording = split_largest_remainder(pool, shares)
    except AllocationError as exc:
        raise InvalidInput(f"TDA shares cannot be used: {exc}") from exc
    rights = recordings_rights(recording_ids=by_recording)
    publishing_bp = fee.split_policy.publishing_bp if fee.split_policy else 0
    with transaction.atomic():
        tx = LedgerTransaction.objects.create(
            key=key,
            kind=LedgerTransaction.Kind.TDA_SETTLEMENT,
            generation_ref=generation_ref,
            currency=fee.currency,
            booked_at=timezone.now(),
            memo=f"TDA pool of {pool} over {sum(1 for v in by_recording.values() if v)} recordings",
        )
        first = fee.entries.first()  # None for a free tier: nothing to settle then
        posting = Posting(
            tx,
            level=first.level if first else "",
            distribution=first.distribution if first else "",
        )
        posting.add(Account.Kind.PENDING_TDA_POOL, pool, Component.TDA_POOL)
        for rid, part in by_recording.items():
            posting.credit_recording(part, rid, rights[rid], publishing_bp, Component.TDA)
        posting.save()
        if live_holds(generation_ref).exists():  # held for review: so is what arrives later
            hold_posting(tx, reason="the generation's payouts are held for review")
    return tx
