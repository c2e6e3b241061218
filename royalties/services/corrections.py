"""Corrections of who a generation's postings paid, after a dispute is upheld.

The original postings stay. A correction is one balanced posting that takes back what the
corrected part currently pays each payee (a debit of each payable, as it stands net of
earlier corrections) and pays the same amount anew (credits): by corrected reference weights
(the fee's direct part), or over a recording's corrected master shares (ownership). A TDA
settlement is corrected by reversing it and settling the pool again with corrected shares.
Corrections of one generation are numbered (`generation:<ref>:fee-correction:<n>`); each is
held like any other posting while its generation is under review (`royalties.services.holds`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from catalog.selectors import recordings_existing
from config.exceptions import Conflict, InvalidInput, NotFound
from royalties.allocation import (
    AllocationError,
    split_by_rights_shares,
    split_largest_remainder,
)
from royalties.models import (
    Account,
    Component,
    LedgerEntry,
    LedgerTransaction,
    Side,
    Statement,
)
from royalties.selectors import period_of
from royalties.services.fees import recordings_rights
from royalties.services.holds import source_hold_set, transaction_reverse
from royalties.services.inputs import _require_staff
from royalties.services.posting import Posting
from royalties.services.postings import tda_pool_settle

Kind = LedgerTransaction.Kind
FEE_PART = (Kind.GENERATION_FEE, Kind.FEE_CORRECTION)
TDA_PART = (Kind.TDA_SETTLEMENT, Kind.TDA_CORRECTION)


def charged_fee(generation_ref: str) -> LedgerTransaction:
    fee = LedgerTransaction.objects.filter(key=f"generation:{generation_ref}:fee").first()
    if fee is None:
        raise NotFound(f"generation {generation_ref} has not been charged")
    if hasattr(fee, "reversed_by"):
        raise Conflict(f"the fee of generation {generation_ref} was reversed")
    return fee


def _live(generation_ref: str, kinds) -> list[LedgerTransaction]:
    return list(
        LedgerTransaction.objects.filter(
            generation_ref=generation_ref, kind__in=kinds, reversed_by__isnull=True
        ).order_by("pk")
    )


def _next_key(generation_ref: str, part: str) -> str:
    earlier = LedgerTransaction.objects.filter(
        key__startswith=f"generation:{generation_ref}:{part}:"
    ).count()
    return f"generation:{generation_ref}:{part}:{earlier + 1}"


def _correction(fee: LedgerTransaction, kind: str, part: str, memo: str, actor) -> Posting:
    tx = LedgerTransaction.objects.create(
        key=_next_key(fee.generation_ref, part),
        kind=kind,
        generation_ref=fee.generation_ref,
        currency=fee.currency,
        booked_at=timezone.now(),
        memo=memo[:500],
        price_list=fee.price_list,
        split_policy=fee.split_policy,
        created_by=actor,
    )
    first = fee.entries.first()
    return Posting(
        tx, level=first.level if first else "", distribution=first.distribution if first else ""
    )


def checked_weights(weights: Mapping[int, object], what: str) -> dict[int, float]:
    """Recording id -> a finite, non-negative weight; at least one positive; recordings exist."""
    if not weights:
        raise InvalidInput(f"corrected {what} name no recording")
    clean: dict[int, float] = {}
    for rid, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise InvalidInput(f"the {what} of recording {rid} is not a number: {weight!r}")
        if not math.isfinite(weight) or weight < 0:
            raise InvalidInput(f"the {what} of recording {rid} must be finite and >= 0")
        clean[int(rid)] = float(weight)
    if not any(clean.values()):
        raise InvalidInput(f"corrected {what} are all zero")
    unknown = set(clean) - recordings_existing(recording_ids=clean)
    if unknown:
        raise InvalidInput("unknown recordings", details={"recording_ids": sorted(unknown)})
    return {rid: w for rid, w in clean.items() if w > 0}


@transaction.atomic
def fee_direct_correct(
    *, actor: AbstractBaseUser, generation_ref: str, weights: Mapping[int, float], reason: str
) -> LedgerTransaction:
    """Divide the fee's direct part anew by corrected reference weights (recording id ->
    weight; a recording left out or at 0 is paid nothing), through today's rights shares."""
    _require_staff(actor, "correct postings")
    if not reason.strip():
        raise InvalidInput("a correction needs a reason")
    fee = charged_fee(generation_ref)
    weights = checked_weights(weights, "weights")
    sources = _live(generation_ref, FEE_PART)
    positions = (
        LedgerEntry.objects.filter(transaction__in=sources, component=Component.ITA)
        .values("account__kind", "holder_id", "recording_id", "side", "work_id")
        .annotate(net=Sum("amount_minor"))
        .order_by("account__kind", "holder_id", "recording_id", "side", "work_id")
    )
    direct = -sum(row["net"] for row in positions)
    if direct <= 0:
        raise Conflict(f"the fee of generation {generation_ref} has no direct part to correct")
    try:
        by_recording = split_largest_remainder(direct, weights)
    except AllocationError as exc:
        raise InvalidInput(f"the corrected weights cannot be used: {exc}") from exc
    rights = recordings_rights(recording_ids=by_recording)
    publishing_bp = fee.split_policy.publishing_bp if fee.split_policy else 0
    posting = _correction(
        fee, Kind.FEE_CORRECTION, "fee-correction",
        f"direct part of {direct} re-divided by corrected weights: {reason.strip()}", actor,
    )  # fmt: skip
    for row in positions:
        posting.add(
            row["account__kind"],
            -row["net"],
            Component.ITA,
            holder_id=row["holder_id"],
            recording_id=row["recording_id"],
            side=row["side"],
            work_id=row["work_id"],
        )
    for rid, part in by_recording.items():
        posting.credit_recording(part, rid, rights[rid], publishing_bp, Component.ITA)
    posting.save()
    return posting.tx


def _open_for(holder_id: int, booked_at, currency: str, closed: dict) -> bool:
    if holder_id not in closed:
        closed[holder_id] = set(
            Statement.objects.filter(holder_id=holder_id, currency=currency).values_list(
                "period", flat=True
            )
        )
    return period_of(booked_at) not in closed[holder_id]


def recording_master_entries(
    *, sources: list[LedgerTransaction], recording_id: int
) -> list[LedgerEntry]:
    """The master-side payable entries of `recording_id` in `sources` that are not in a
    closed statement of their holder: what an ownership dispute about it puts in question."""
    closed: dict[int, set] = {}
    entries = LedgerEntry.objects.filter(
        Q(side=Side.MASTER) | Q(side=""),
        transaction__in=sources,
        account__kind=Account.Kind.HOLDER_PAYABLE,
        recording_id=recording_id,
    ).order_by("pk")
    return [e for e in entries if _open_for(e.holder_id, e.booked_at, e.currency, closed)]


@transaction.atomic
def recording_master_correct(
    *,
    actor: AbstractBaseUser,
    generation_ref: str,
    recording_id: int,
    master_shares: Mapping[int, int],
    reason: str,
) -> list[LedgerTransaction]:
    """Pay what the generation's postings owe the master holders of a recording (not yet in
    a closed statement) over corrected master shares (holder id -> basis points, summing to
    10,000): one correction for the fee's part, one for the TDA part, where there is any."""
    _require_staff(actor, "correct postings")
    fee = charged_fee(generation_ref)
    posted = []
    for kinds, kind, part in (
        (FEE_PART, Kind.FEE_CORRECTION, "fee-correction"),
        (TDA_PART, Kind.TDA_CORRECTION, "tda-correction"),
    ):
        entries = recording_master_entries(
            sources=_live(generation_ref, kinds), recording_id=recording_id
        )
        groups: dict[tuple, int] = {}
        for e in entries:
            key = (e.holder_id, e.component, e.module)
            groups[key] = groups.get(key, 0) + e.amount_minor
        totals: dict[tuple[str, str], int] = {}
        for (_, component, module), net in groups.items():
            totals[(component, module)] = totals.get((component, module), 0) - net
        if not any(total > 0 for total in totals.values()):
            continue
        posting = _correction(
            fee, kind, part,
            f"recording {recording_id}'s master part paid over corrected shares: "
            f"{reason.strip()}", actor,
        )  # fmt: skip
        for (holder_id, component, module), net in groups.items():
            if totals[(component, module)] > 0:
                posting.add(
                    Account.Kind.HOLDER_PAYABLE, -net, component, holder_id=holder_id,
                    recording_id=recording_id, side=Side.MASTER, module=module,
                )  # fmt: skip
        for (component, module), total in totals.items():
            if total <= 0:
                continue
            try:
                by_holder = split_by_rights_shares(total, master_shares)
            except AllocationError as exc:
                raise InvalidInput(f"the corrected shares cannot be used: {exc}") from exc
            for holder_id, amount in by_holder.items():
                posting.add(
                    Account.Kind.HOLDER_PAYABLE, -amount, component, holder_id=holder_id,
                    recording_id=recording_id, side=Side.MASTER, module=module,
                )  # fmt: skip
        posting.save()
        posted.append(posting.tx)
    return posted


@transaction.atomic
def tda_settlement_correct(
    *, actor: AbstractBaseUser, generation_ref: str, shares: Mapping[int, float], reason: str
) -> tuple[list[LedgerTransaction], LedgerTransaction]:
    """Settle the generation's TDA pool again by corrected shares (training recording id ->
    share): the live settlement and any TDA corrections are reversed (their holds first),
    then `tda_pool_settle` posts the new one. Returns (reversals, new settlement)."""
    _require_staff(actor, "correct postings")
    if not reason.strip():
        raise InvalidInput("a correction needs a reason")
    charged_fee(generation_ref)
    shares = checked_weights(shares, "shares")
    reversals = []
    for source in reversed(_live(generation_ref, TDA_PART)):  # corrections before settlement
        source_hold_set(source=source, entries=[], reason=reason, actor=actor)
        reversals.append(transaction_reverse(actor=actor, ledger_transaction=source, reason=reason))
    return reversals, tda_pool_settle(generation_ref=generation_ref, shares=shares)
