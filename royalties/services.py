"""Writes of the royalties app: price lists, split policies, ledger postings, statements.

A generation is charged once, when it completes, at the price list and split policy in force
when it was verified. The fee's direct part goes to the holders of its references (by weight,
then rights shares), the auxiliary part flat to the holders of the recordings that trained the
model, the platform part to revenue, and the TDA pool to a pending account until the
generation's training-time attribution arrives (`tda_pool_settle`). Posting is idempotent per
generation and stage; corrections are reversals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog.models import LEVEL_USES, Distribution, Level, RightsHolder
from catalog.selectors import recording_rights_shares, recordings_existing
from config.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from royalties import selectors
from royalties.allocation import (
    AllocationError,
    FeeSplit,
    allocate_fee,
    split_by_rights_shares,
    split_largest_remainder,
)
from royalties.models import (
    Account,
    Component,
    LedgerEntry,
    LedgerTransaction,
    PriceList,
    PriceTier,
    SplitPolicy,
    Statement,
)

LEVEL_ORDER = list(LEVEL_USES)  # least intrusive first: a generation pays its highest level


def currency_checked(code: str | None) -> str:
    code = (code or settings.ROYALTIES_DEFAULT_CURRENCY).upper()
    if code not in settings.ROYALTIES_CURRENCIES:
        accepted = ", ".join(sorted(settings.ROYALTIES_CURRENCIES))
        raise InvalidInput(
            f"unknown currency '{code}'; accepted: {accepted}", details={"currency": code}
        )
    return code


def _require_staff(actor: AbstractBaseUser, what: str) -> None:
    if not actor.is_staff:
        raise Forbidden(f"only staff can {what}")


def _aware(moment: datetime, name: str) -> datetime:
    if timezone.is_naive(moment):
        raise InvalidInput(f"{name} needs a time zone", details={name: str(moment)})
    return moment


# --- prices and splits ------------------------------------------------------------------------


@transaction.atomic
def price_list_publish(
    *,
    actor: AbstractBaseUser,
    tiers: Mapping[tuple[str, str], int],
    currency: str | None = None,
    effective_from: datetime | None = None,
    note: str = "",
) -> PriceList:
    """A new version of the price tiers: every level x distribution, in minor units."""
    _require_staff(actor, "publish prices")
    currency = currency_checked(currency)
    effective_from = _aware(effective_from or timezone.now(), "effective_from")
    expected = {(level.value, dist.value) for level in Level for dist in Distribution}
    given = {(str(level), str(dist)) for level, dist in tiers}
    if given != expected:
        raise InvalidInput(
            "a price list needs exactly one amount per level and distribution",
            details={
                "missing": sorted("/".join(k) for k in expected - given),
                "unknown": sorted("/".join(k) for k in given - expected),
            },
        )
    bad = {
        f"{lv}/{di}": amount
        for (lv, di), amount in tiers.items()
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0
    }
    if bad:
        raise InvalidInput(
            "prices are non-negative integers of minor units (cents)", details={"amounts": bad}
        )
    if PriceList.objects.filter(currency=currency, effective_from=effective_from).exists():
        raise Conflict(f"a {currency} price list already starts at {effective_from.isoformat()}")
    price_list = PriceList.objects.create(
        currency=currency, effective_from=effective_from, note=note, created_by=actor
    )
    PriceTier.objects.bulk_create(
        PriceTier(price_list=price_list, level=lv, distribution=di, amount_minor=amount)
        for (lv, di), amount in tiers.items()
    )
    return price_list


def split_policy_publish(
    *,
    actor: AbstractBaseUser,
    direct_bp: int,
    tda_pool_bp: int,
    auxiliary_bp: int,
    platform_bp: int,
    effective_from: datetime | None = None,
    note: str = "",
) -> SplitPolicy:
    _require_staff(actor, "change the fee split")
    effective_from = _aware(effective_from or timezone.now(), "effective_from")
    try:
        FeeSplit(direct_bp, tda_pool_bp, auxiliary_bp, platform_bp)
    except AllocationError as exc:
        raise InvalidInput(str(exc)) from exc
    if SplitPolicy.objects.filter(effective_from=effective_from).exists():
        raise Conflict(f"a split policy already starts at {effective_from.isoformat()}")
    return SplitPolicy.objects.create(
        effective_from=effective_from,
        direct_bp=direct_bp,
        tda_pool_bp=tda_pool_bp,
        auxiliary_bp=auxiliary_bp,
        platform_bp=platform_bp,
        note=note,
        created_by=actor,
    )


# --- postings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChargedReference:
    """A reference of a completed generation as the ledger needs it."""

    recording_id: int
    level: str
    weight: float


class _Posting:
    """Collects the entries of one transaction and writes them; zero amounts are dropped."""

    def __init__(self, tx: LedgerTransaction, *, level: str = "", distribution: str = "") -> None:
        self.tx, self.level, self.distribution = tx, level, distribution
        self.entries: list[LedgerEntry] = []
        self._accounts: dict[tuple[str, int | None], Account] = {}

    def add(
        self,
        kind: str,
        amount: int,
        component: str,
        *,
        holder_id: int | None = None,
        recording_id: int | None = None,
    ) -> None:
        if amount == 0:
            return
        account = self._accounts.get((kind, holder_id))
        if account is None:  # one lookup per account, not per entry (a label has many)
            account, _ = Account.objects.get_or_create(
                kind=kind, holder_id=holder_id, currency=self.tx.currency
            )
            self._accounts[(kind, holder_id)] = account
        self.entries.append(
            LedgerEntry(
                transaction=self.tx,
                account=account,
                amount_minor=amount,
                currency=self.tx.currency,
                component=component,
                holder_id=holder_id,
                recording_id=recording_id,
                generation_ref=self.tx.generation_ref,
                level=self.level,
                distribution=self.distribution,
                booked_at=self.tx.booked_at,
            )
        )

    def credit_holders(
        self, amount: int, recording_id: int, shares: Mapping[int, int], component: str
    ) -> None:
        """Credit a recording's amount to its holders, or to unallocated without shares."""
        by_holder = split_by_rights_shares(amount, shares)
        if not by_holder:
            self.add(Account.Kind.UNALLOCATED, -amount, component, recording_id=recording_id)
        for holder_id, part in by_holder.items():
            self.add(
                Account.Kind.HOLDER_PAYABLE,
                -part,
                component,
                holder_id=holder_id,
                recording_id=recording_id,
            )

    def save(self) -> None:
        total = sum(e.amount_minor for e in self.entries)
        if total != 0:  # the database would refuse it at commit; say why here
            raise AssertionError(f"posting {self.tx.key} is unbalanced by {total}")
        LedgerEntry.objects.bulk_create(self.entries)


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
    shares = recording_rights_shares(recording_ids=[*allocation.direct, *allocation.auxiliary])
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
            posting = _Posting(tx, level=level, distribution=distribution)
            posting.add(Account.Kind.RECEIVABLE, amount, Component.FEE)
            for rid, part in allocation.direct.items():
                posting.credit_holders(part, rid, shares[rid], Component.ITA)
            for rid, part in allocation.auxiliary.items():
                posting.credit_holders(part, rid, shares[rid], Component.AUXILIARY)
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
    rights = recording_rights_shares(recording_ids=by_recording)
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
        posting = _Posting(
            tx,
            level=first.level if first else "",
            distribution=first.distribution if first else "",
        )
        posting.add(Account.Kind.PENDING_TDA_POOL, pool, Component.TDA_POOL)
        for rid, part in by_recording.items():
            posting.credit_holders(part, rid, rights[rid], Component.TDA)
        posting.save()
        if _live_holds(generation_ref).exists():  # held for review: so is what arrives later
            _hold_posting(tx, reason="the generation's payouts are held for review")
    return tx


# --- payout holds (similarity audit flags) --------------------------------------------------


def _live_holds(generation_ref: str):
    return LedgerTransaction.objects.filter(
        kind=LedgerTransaction.Kind.PAYOUT_HOLD,
        generation_ref=generation_ref,
        reversed_by__isnull=True,
    )


def _hold_key_pattern(source: LedgerTransaction) -> str:
    return rf"^hold:{source.pk}(:[0-9]+)?$"


def _hold_posting(source: LedgerTransaction, *, reason: str) -> LedgerTransaction | None:
    """Move what `source` credited to rights holders into the held-for-review account: a
    debit of each holder's payable and a credit of the held account, per entry, so the
    holder's owed total for this generation is zero until the hold is reversed."""
    payable = list(source.entries.filter(account__kind=Account.Kind.HOLDER_PAYABLE))
    if not payable:
        return None
    earlier = LedgerTransaction.objects.filter(
        kind=LedgerTransaction.Kind.PAYOUT_HOLD, key__regex=_hold_key_pattern(source)
    ).count()  # a released hold is followed by a new one under a new key
    tx = LedgerTransaction.objects.create(
        key=f"hold:{source.pk}" + (f":{earlier + 1}" if earlier else ""),
        kind=LedgerTransaction.Kind.PAYOUT_HOLD,
        generation_ref=source.generation_ref,
        currency=source.currency,
        booked_at=timezone.now(),
        memo=f"payouts of {source.key} held: {reason}"[:500],
    )
    posting = _Posting(tx, level=payable[0].level, distribution=payable[0].distribution)
    for entry in payable:
        posting.add(
            Account.Kind.HOLDER_PAYABLE,
            -entry.amount_minor,
            entry.component,
            holder_id=entry.holder_id,
            recording_id=entry.recording_id,
        )
        posting.add(
            Account.Kind.PAYOUTS_HELD,
            entry.amount_minor,
            entry.component,
            recording_id=entry.recording_id,
        )
    posting.save()
    return tx


@transaction.atomic
def generation_payouts_hold(*, generation_ref: str, reason: str) -> list[LedgerTransaction]:
    """Hold a generation's rights-holder payouts for review (fee and any TDA settlement);
    a TDA settlement posted while held is held as well. Idempotent: postings already held
    are not held twice. Released by `generation_payouts_release` (reversals)."""
    if not reason.strip():
        raise InvalidInput("a payout hold needs a reason")
    fee = (
        LedgerTransaction.objects.select_for_update()
        .filter(key=f"generation:{generation_ref}:fee")
        .first()
    )
    if fee is None:
        raise NotFound(f"generation {generation_ref} has not been charged")
    if hasattr(fee, "reversed_by"):
        raise Conflict(f"the fee of generation {generation_ref} was reversed; nothing to hold")
    settlements = LedgerTransaction.objects.filter(
        kind=LedgerTransaction.Kind.TDA_SETTLEMENT,
        generation_ref=generation_ref,
        reversed_by__isnull=True,
    ).order_by("pk")
    held = []
    for source in [fee, *settlements]:
        live = _live_holds(generation_ref).filter(key__regex=_hold_key_pattern(source)).first()
        hold = live or _hold_posting(source, reason=reason.strip())
        if hold is not None:
            held.append(hold)
    return held


@transaction.atomic
def generation_payouts_release(
    *, actor: AbstractBaseUser, generation_ref: str, reason: str
) -> list[LedgerTransaction]:
    """Release held payouts after review: every live hold is reversed (booked now)."""
    _require_staff(actor, "release held payouts")
    holds = list(_live_holds(generation_ref).select_for_update(of=("self",)).order_by("pk"))
    if not holds:
        raise Conflict(f"no payouts of generation {generation_ref} are held")
    return [
        transaction_reverse(actor=actor, ledger_transaction=hold, reason=reason) for hold in holds
    ]


@transaction.atomic
def transaction_reverse(
    *, actor: AbstractBaseUser, ledger_transaction: LedgerTransaction, reason: str
) -> LedgerTransaction:
    """Undo a posting with its mirror image, booked now; the original stays as it was."""
    _require_staff(actor, "reverse ledger postings")
    if not reason.strip():
        raise InvalidInput("a reversal needs a reason")
    tx = LedgerTransaction.objects.select_for_update().get(pk=ledger_transaction.pk)
    if tx.kind == LedgerTransaction.Kind.REVERSAL:
        raise Conflict("a reversal is not reversed; post the original again instead")
    if hasattr(tx, "reversed_by"):
        raise Conflict(f"transaction {tx.pk} was already reversed by {tx.reversed_by.pk}")
    if tx.kind != LedgerTransaction.Kind.PAYOUT_HOLD and (
        _live_holds(tx.generation_ref).filter(key__regex=_hold_key_pattern(tx)).exists()
    ):
        raise Conflict(f"transaction {tx.pk} has held payouts; release the hold first")
    if tx.kind == LedgerTransaction.Kind.GENERATION_FEE:
        settled = LedgerTransaction.objects.filter(
            kind=LedgerTransaction.Kind.TDA_SETTLEMENT,
            generation_ref=tx.generation_ref,
            reversed_by__isnull=True,
        ).first()
        if settled:
            raise Conflict(f"reverse the TDA settlement {settled.pk} of this generation first")
    reversal = LedgerTransaction.objects.create(
        key=f"reversal:{tx.pk}",
        kind=LedgerTransaction.Kind.REVERSAL,
        generation_ref=tx.generation_ref,
        currency=tx.currency,
        booked_at=timezone.now(),
        memo=reason.strip()[:500],
        reverses=tx,
        created_by=actor,
    )
    LedgerEntry.objects.bulk_create(
        LedgerEntry(
            transaction=reversal,
            account_id=e.account_id,
            amount_minor=-e.amount_minor,
            currency=e.currency,
            component=e.component,
            holder_id=e.holder_id,
            recording_id=e.recording_id,
            generation_ref=e.generation_ref,
            level=e.level,
            distribution=e.distribution,
            booked_at=reversal.booked_at,
        )
        for e in tx.entries.all()
    )
    return reversal


# --- statements ---------------------------------------------------------------------------


@transaction.atomic
def statement_close(
    *, actor: AbstractBaseUser, holder: RightsHolder, period: date, currency: str | None = None
) -> Statement:
    """Freeze a holder's month. Postings are booked at the time they are made, so a month that
    has ended receives no new entries; the statement keeps its totals and a digest of them."""
    _require_staff(actor, "close statements")
    currency = currency_checked(currency)
    start, end = selectors.period_bounds(period)
    period = start.date()
    if end > timezone.now():
        raise InvalidInput(f"the period {start:%Y-%m} has not ended yet")
    if Statement.objects.filter(holder=holder, period=period, currency=currency).exists():
        raise Conflict(f"the statement for {start:%Y-%m} is already closed")
    summary = selectors.holder_period_totals(
        holder=holder, period=period, currency=currency, with_digest=True
    )
    return Statement.objects.create(
        holder=holder,
        period=period,
        currency=currency,
        ita_minor=summary.ita,
        tda_minor=summary.tda,
        auxiliary_minor=summary.auxiliary,
        total_minor=summary.total,
        entry_count=summary.entry_count,
        entries_sha256=summary.entries_sha256,
        closed_by=actor,
    )
