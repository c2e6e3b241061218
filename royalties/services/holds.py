"""Payout holds (similarity-audit flags), their release, and reversals of postings."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from config.exceptions import Conflict, InvalidInput, NotFound
from royalties.models import (
    Account,
    LedgerEntry,
    LedgerTransaction,
)
from royalties.services.inputs import _require_staff
from royalties.services.posting import Posting

# --- payout holds (similarity audit flags) --------------------------------------------------


def live_holds(generation_ref: str):
    return LedgerTransaction.objects.filter(
        kind=LedgerTransaction.Kind.PAYOUT_HOLD,
        generation_ref=generation_ref,
        reversed_by__isnull=True,
    )


def _hold_key_pattern(source: LedgerTransaction) -> str:
    return rf"^hold:{source.pk}(:[0-9]+)?$"


def hold_posting(source: LedgerTransaction, *, reason: str) -> LedgerTransaction | None:
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
    posting = Posting(tx, level=payable[0].level, distribution=payable[0].distribution)
    for entry in payable:
        posting.add(
            Account.Kind.HOLDER_PAYABLE,
            -entry.amount_minor,
            entry.component,
            holder_id=entry.holder_id,
            recording_id=entry.recording_id,
            side=entry.side,
            work_id=entry.work_id,
        )
        posting.add(
            Account.Kind.PAYOUTS_HELD,
            entry.amount_minor,
            entry.component,
            recording_id=entry.recording_id,
            side=entry.side,
            work_id=entry.work_id,
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
        live = live_holds(generation_ref).filter(key__regex=_hold_key_pattern(source)).first()
        hold = live or hold_posting(source, reason=reason.strip())
        if hold is not None:
            held.append(hold)
    return held


@transaction.atomic
def generation_payouts_release(
    *, actor: AbstractBaseUser, generation_ref: str, reason: str
) -> list[LedgerTransaction]:
    """Release held payouts after review: every live hold is reversed (booked now)."""
    _require_staff(actor, "release held payouts")
    holds = list(live_holds(generation_ref).select_for_update(of=("self",)).order_by("pk"))
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
        live_holds(tx.generation_ref).filter(key__regex=_hold_key_pattern(tx)).exists()
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
            side=e.side,
            work_id=e.work_id,
            generation_ref=e.generation_ref,
            level=e.level,
            distribution=e.distribution,
            booked_at=reversal.booked_at,
        )
        for e in tx.entries.all()
    )
    return reversal
