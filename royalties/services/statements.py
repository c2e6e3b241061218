"""Monthly statements of a rights holder, closed from the ledger."""

from __future__ import annotations

from datetime import date

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from catalog.models import RightsHolder
from config.exceptions import Conflict, InvalidInput
from royalties import selectors
from royalties.models import (
    Statement,
)
from royalties.services.inputs import _require_staff, currency_checked

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
        master_minor=summary.master,
        publishing_minor=summary.publishing,
        auxiliary_by_module=summary.auxiliary_by_module,
        entry_count=summary.entry_count,
        entries_sha256=summary.entries_sha256,
        closed_by=actor,
    )
