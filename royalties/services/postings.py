"""Ledger postings of a generation: the fee when it completes, the TDA pool when its
training-time attribution settles. Idempotent per generation and stage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog.selectors import (
    recordings_existing,
)
from config.exceptions import Conflict, InvalidInput, NotFound
from royalties.allocation import (
    AllocationError,
    PaidModule,
    split_largest_remainder,
)
from royalties.models import (
    Account,
    Component,
    LedgerTransaction,
)
from royalties.services.fees import ChargedReference, fee_plan, recordings_rights
from royalties.services.holds import new_posting_hold
from royalties.services.posting import Posting

# --- postings -----------------------------------------------------------------------------


def generation_fee_post(
    *,
    generation_ref: str,
    verified_at: datetime,
    distribution: str,
    references: Sequence[ChargedReference],
    training_recording_ids: Sequence[int],
    currency: str | None = None,
    modules: Sequence[PaidModule] | None = None,
) -> LedgerTransaction:
    """Charge a completed generation once (a second call returns the first posting)."""
    key = f"generation:{generation_ref}:fee"
    existing = LedgerTransaction.objects.filter(key=key).first()
    if existing:
        return existing
    plan = fee_plan(
        at=verified_at,
        distribution=distribution,
        references=references,
        training_recording_ids=training_recording_ids,
        currency=currency,
        modules=modules,
    )
    allocation, policy, level, amount = plan.allocation, plan.policy, plan.level, plan.amount
    memo = f"{level}-level generation, {distribution}, verified {verified_at:%Y-%m-%d}"
    if plan.floor:
        memo += (
            f"; floor {plan.floor.amount_minor} of holder {plan.floor.holder_id} on recording "
            f"{plan.floor.recording_id} (tier {plan.tier_minor})"
        )
    try:
        with transaction.atomic():
            tx = LedgerTransaction.objects.create(
                key=key,
                kind=LedgerTransaction.Kind.GENERATION_FEE,
                generation_ref=generation_ref,
                currency=plan.currency,
                booked_at=timezone.now(),
                memo=memo[:500],
                price_list=plan.price_list,
                split_policy=policy,
                training_recording_ids=list(dict.fromkeys(training_recording_ids)),
            )
            posting = Posting(tx, level=level, distribution=distribution)
            posting.add(Account.Kind.RECEIVABLE, amount, Component.FEE)
            for rid, part in allocation.direct.items():
                posting.credit_recording(
                    part, rid, plan.rights[rid], policy.publishing_bp, Component.ITA
                )
            for module_part in allocation.modules:
                posting.credit_module(module_part, plan.rights, policy.publishing_bp)
            posting.add(Account.Kind.PENDING_TDA_POOL, -allocation.tda_pool, Component.TDA_POOL)
            posting.add(Account.Kind.PLATFORM_REVENUE, -allocation.platform, Component.PLATFORM)
            posting.add(Account.Kind.UNALLOCATED, -allocation.unallocated, Component.UNALLOCATED)
            posting.save()
            new_posting_hold(tx)  # e.g. a recording whose ownership is disputed
    except IntegrityError:  # the same generation posted concurrently: keep the first
        existing = LedgerTransaction.objects.filter(key=key).first()
        if existing is None:
            raise
        return existing
    return tx


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
        new_posting_hold(tx)  # held for review or disputed: so is what arrives later
    return tx
