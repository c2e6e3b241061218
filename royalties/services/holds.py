"""Payout holds (similarity-audit flags, disputes), their release, and reversals of postings.

A hold is a balanced transaction that moves some of what one posting (its source: a fee, a TDA
settlement or a correction) credited to rights holders into the held-for-review account; its
key is `hold:<source id>` (`:<n>` for later ones). A source has at most one live hold, which
covers all of its payable entries (a review of the whole generation) or some of them (a
dispute about one recording). Changing what is held reverses the live hold and posts the new
one, so every step is an append-only, balanced posting and nothing is ever held twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.module_loading import import_string

from config.exceptions import Conflict, InvalidInput, NotFound
from royalties.models import (
    Account,
    LedgerEntry,
    LedgerTransaction,
)
from royalties.services.inputs import _require_staff
from royalties.services.posting import Posting

# postings whose payouts can be held (and are held together when a generation is reviewed)
HOLDABLE_KINDS = (
    LedgerTransaction.Kind.GENERATION_FEE,
    LedgerTransaction.Kind.TDA_SETTLEMENT,
    LedgerTransaction.Kind.FEE_CORRECTION,
    LedgerTransaction.Kind.TDA_CORRECTION,
)


def live_holds(generation_ref: str) -> QuerySet[LedgerTransaction]:
    return LedgerTransaction.objects.filter(
        kind=LedgerTransaction.Kind.PAYOUT_HOLD,
        generation_ref=generation_ref,
        reversed_by__isnull=True,
    )


def _hold_key_pattern(source: LedgerTransaction) -> str:
    return rf"^hold:{source.pk}(:[0-9]+)?$"


def source_live_holds(source: LedgerTransaction) -> QuerySet[LedgerTransaction]:
    return live_holds(source.generation_ref).filter(key__regex=_hold_key_pattern(source))


def generation_sources(generation_ref: str) -> list[LedgerTransaction]:
    """The generation's live postings that pay holders: fee, settlements, corrections."""
    return list(
        LedgerTransaction.objects.filter(
            generation_ref=generation_ref, kind__in=HOLDABLE_KINDS, reversed_by__isnull=True
        ).order_by("pk")
    )


def payable_entries(source: LedgerTransaction) -> list[LedgerEntry]:
    return list(source.entries.filter(account__kind=Account.Kind.HOLDER_PAYABLE).order_by("pk"))


def _signature(entry: LedgerEntry, sign: int = 1) -> tuple:
    return (
        entry.holder_id,
        entry.recording_id,
        entry.side,
        entry.work_id,
        entry.component,
        sign * entry.amount_minor,
    )


def _held(holds: Iterable[LedgerTransaction]) -> Counter:
    """The source entries these holds cover (a hold's payable entry mirrors its source's)."""
    return Counter(
        _signature(entry, -1)
        for hold in holds
        for entry in hold.entries.filter(account__kind=Account.Kind.HOLDER_PAYABLE)
    )


def hold_posting(
    source: LedgerTransaction, *, reason: str, entries: Sequence[LedgerEntry] | None = None
) -> LedgerTransaction | None:
    """Move what `source` credited to rights holders (all of it, or `entries`) into the
    held-for-review account: a debit of each holder's payable and a credit of the held
    account, per entry, so the holder is owed nothing of it until the hold is reversed."""
    payable = payable_entries(source) if entries is None else list(entries)
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
        where = {
            "recording_id": entry.recording_id,
            "side": entry.side,
            "work_id": entry.work_id,
            "module": entry.module,
        }
        posting.add(
            Account.Kind.HOLDER_PAYABLE,
            -entry.amount_minor,
            entry.component,
            holder_id=entry.holder_id,
            **where,
        )
        posting.add(Account.Kind.PAYOUTS_HELD, entry.amount_minor, entry.component, **where)
    posting.save()
    return tx


def source_hold_set(
    *,
    source: LedgerTransaction,
    entries: Sequence[LedgerEntry],
    reason: str,
    actor: AbstractBaseUser | None = None,
) -> LedgerTransaction | None:
    """Make the hold of `source` cover exactly `entries` (some of its payable entries, maybe
    none): nothing is posted when it already does; otherwise the live hold is reversed and
    the new one posted. For the services that hold by rule (audit flags, disputes), which
    check their own actors; `actor` (or nobody, for a deadline) is recorded on reversals."""
    if not reason.strip():
        raise InvalidInput("a payout hold needs a reason")
    wanted = Counter(_signature(entry) for entry in entries)
    live = list(source_live_holds(source).select_for_update(of=("self",)).order_by("pk"))
    if wanted == _held(live):
        return live[-1] if live else None
    for hold in live:
        _mirror(hold, reason=f"hold changed: {reason}", actor=actor)
    return hold_posting(source, reason=reason.strip(), entries=entries) if entries else None


def _holds_wanted_by_reasons():
    """The function of the apps above that says which payable entries of a posting the
    reasons in force (audit flags, open disputes) want held: `settings.ROYALTIES_HOLDS_WANTED`
    (source -> entries), or None where no app names one."""
    name = getattr(settings, "ROYALTIES_HOLDS_WANTED", "")
    return import_string(name) if name else None


def new_posting_hold(source: LedgerTransaction) -> LedgerTransaction | None:
    """Hold what the reasons in force want held of a posting that just arrived (a TDA
    settlement while its generation is under review or disputed); without a reasons function,
    everything while the generation has any live hold."""
    wanted = _holds_wanted_by_reasons()
    if wanted is not None:
        entries = wanted(source)
    else:
        entries = payable_entries(source) if live_holds(source.generation_ref).exists() else []
    reason = "the generation's payouts are held for review"
    return source_hold_set(source=source, entries=entries, reason=reason) if entries else None


@transaction.atomic
def generation_holds_reconcile(
    *, generation_ref: str, reason: str, actor: AbstractBaseUser | None = None
) -> list[LedgerTransaction]:
    """Make the hold of each of the generation's live postings match what the reasons in
    force want (`settings.ROYALTIES_HOLDS_WANTED`; nothing without it), after a reason came
    or went: a review released, a dispute opened or closed. Returns the holds in force."""
    wanted = _holds_wanted_by_reasons() or (lambda source: [])
    # one reconciliation of a generation at a time (the audit's hold locks the fee too), so
    # two reasons coming or going together never post two holds of one posting
    LedgerTransaction.objects.select_for_update().filter(
        key=f"generation:{generation_ref}:fee"
    ).first()
    held = []
    for source in generation_sources(generation_ref):
        hold = source_hold_set(source=source, entries=wanted(source), reason=reason, actor=actor)
        if hold is not None:
            held.append(hold)
    return held


@transaction.atomic
def generation_payouts_hold(*, generation_ref: str, reason: str) -> list[LedgerTransaction]:
    """Hold a generation's rights-holder payouts for review (fee, TDA settlements and
    corrections, whole); a TDA settlement posted while held is held as well. Idempotent:
    postings already held whole are not held again. Released by `generation_payouts_release`
    (reversals)."""
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
    held = []
    for source in generation_sources(generation_ref):
        hold = source_hold_set(
            source=source, entries=payable_entries(source), reason=reason.strip()
        )
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
    if tx.kind != LedgerTransaction.Kind.PAYOUT_HOLD and source_live_holds(tx).exists():
        raise Conflict(f"transaction {tx.pk} has held payouts; release the hold first")
    live = LedgerTransaction.objects.filter(
        generation_ref=tx.generation_ref, reversed_by__isnull=True
    ).exclude(pk=tx.pk)
    if tx.kind == LedgerTransaction.Kind.GENERATION_FEE:
        later = live.filter(
            kind__in=[
                LedgerTransaction.Kind.TDA_SETTLEMENT,
                LedgerTransaction.Kind.FEE_CORRECTION,
                LedgerTransaction.Kind.TDA_CORRECTION,
            ]
        ).first()
        if later:
            what = "TDA settlement" if later.kind == "tda_settlement" else "correction"
            raise Conflict(f"reverse the {what} {later.pk} of this generation first")
    if tx.kind == LedgerTransaction.Kind.TDA_SETTLEMENT:
        later = live.filter(kind=LedgerTransaction.Kind.TDA_CORRECTION).first()
        if later:
            raise Conflict(f"reverse the TDA correction {later.pk} of this generation first")
    return _mirror(tx, reason=reason, actor=actor)


def _mirror(
    tx: LedgerTransaction, *, reason: str, actor: AbstractBaseUser | None
) -> LedgerTransaction:
    """The reversal of `tx` (checked by the caller): every entry negated, booked now."""
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
            module=e.module,
            work_id=e.work_id,
            generation_ref=e.generation_ref,
            level=e.level,
            distribution=e.distribution,
            booked_at=reversal.booked_at,
        )
        for e in tx.entries.all()
    )
    return reversal
