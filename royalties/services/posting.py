"""One ledger transaction being built: balanced entries to accounts by component."""

from __future__ import annotations

from collections.abc import Mapping

from royalties.allocation import ModulePart, RecordingRights, split_recording_rights
from royalties.models import (
    Account,
    Component,
    LedgerEntry,
    LedgerTransaction,
)

# --- postings -----------------------------------------------------------------------------


class Posting:
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
        side: str = "",
        work_id: int | None = None,
        module: str = "",
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
                side=side,
                work_id=work_id,
                module=module[:100],
                generation_ref=self.tx.generation_ref,
                level=self.level,
                distribution=self.distribution,
                booked_at=self.tx.booked_at,
            )
        )

    def credit_recording(
        self,
        amount: int,
        recording_id: int,
        rights: RecordingRights,
        publishing_bp: int,
        component: str,
        module: str = "",
    ) -> None:
        """Credit a recording's amount to the holders of both sides of the song (masters;
        writers and publishers of its works); a side with nobody to pay goes to unallocated,
        against the recording."""
        for part in split_recording_rights(amount, rights, publishing_bp):
            self.add(
                Account.Kind.HOLDER_PAYABLE if part.holder_id else Account.Kind.UNALLOCATED,
                -part.amount,
                component,
                holder_id=part.holder_id,
                recording_id=recording_id,
                side=part.side,
                work_id=part.work_id,
                module=module,
            )

    def credit_module(
        self, part: ModulePart, rights: Mapping[int, RecordingRights], publishing_bp: int
    ) -> None:
        """A module's part of the auxiliary pool: to the holders of the recordings it was
        trained on, to the external-creators account, or unallocated."""
        label, component = part.module.label, Component.AUXILIARY
        for rid, amount in part.by_recording.items():
            self.credit_recording(amount, rid, rights[rid], publishing_bp, component, label)
        self.add(Account.Kind.EXTERNAL_CREATORS, -part.external, component, module=label)
        self.add(Account.Kind.UNALLOCATED, -part.unallocated, component, module=label)

    def save(self) -> None:
        total = sum(e.amount_minor for e in self.entries)
        if total != 0:  # the database would refuse it at commit; say why here
            raise AssertionError(f"posting {self.tx.key} is unbalanced by {total}")
        LedgerEntry.objects.bulk_create(self.entries)
