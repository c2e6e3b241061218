"""Payout pages of the rights-holder portal (HTML). Thin: selectors read.

A holder's month: totals direct (ITA) vs TDA vs auxiliary, and as master holder vs as writer or
publisher of works, the statement if the month is
closed, a chart of the last twelve months and one per recording, and the CSV download (the
REST API's CSV, which accepts the signed-in session).
"""

from __future__ import annotations

from functools import partial

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from catalog.models import Distribution, Level
from catalog.selectors import holder_readable_by, holder_recordings_any_side, recording_get
from config.exceptions import InvalidInput
from royalties import selectors
from royalties.charts import stacked_bars
from royalties.services import currency_checked, price_floor_set

HISTORY_MONTHS = 12
CHART_RECORDINGS = 15


@login_required
def holder_payouts(request: HttpRequest, holder_id: int) -> HttpResponse:
    holder = holder_readable_by(user=request.user, holder_id=holder_id)
    currency = currency_checked(request.GET.get("currency"))
    months = selectors.holder_monthly_totals(holder=holder, currency=currency)
    if request.GET.get("period"):
        period = selectors.parse_period(request.GET["period"])
    elif months:
        period = months[-1].period  # the latest month with payouts
    else:
        period = timezone.now().date().replace(day=1)
    money = partial(selectors.format_minor, currency=currency)

    totals = selectors.holder_period_totals(holder=holder, period=period, currency=currency)
    statement = selectors.holder_statement(holder=holder, period=period, currency=currency)
    statements = selectors.holder_statements(holder=holder, currency=currency)
    recordings = selectors.with_recording_details(
        list(selectors.holder_payouts_by_recording(holder=holder, period=period, currency=currency))
    )
    window = selectors.holder_monthly_totals(
        holder=holder,
        currency=currency,
        since=selectors.months_back(period, HISTORY_MONTHS),
        until=period,
    )
    by_month = {m.period: m for m in window}
    month_items = []
    for n in range(HISTORY_MONTHS - 1, -1, -1):
        month = selectors.months_back(period, n + 1)
        m = by_month.get(month)
        parts = {"ita": m.ita, "tda": m.tda, "auxiliary": m.auxiliary} if m else {}
        month_items.append((f"{month:%b %y}", parts))
    recording_items = [
        (row["title"] or f"Recording {row['recording_id']}",
         {"ita": row["ita"], "tda": row["tda"], "auxiliary": row["auxiliary"]})
        for row in recordings[:CHART_RECORDINGS]
    ]  # fmt: skip
    periods = sorted({m.period for m in months} | {period}, reverse=True)
    currency_query = "" if currency == _default_currency() else f"&currency={currency}"
    csv_url = (
        f"{reverse('royalties:payouts-csv', args=[holder.pk])}?period={period:%Y-%m}"
        f"{currency_query}"
    )
    return render(
        request,
        "royalties/payouts.html",
        {
            "holder": holder,
            "currency": currency,
            "period": period,
            "periods": periods,
            "totals": totals,
            "money": {
                "ita": money(totals.ita),
                "tda": money(totals.tda),
                "auxiliary": money(totals.auxiliary),
                "total": money(totals.total),
                "master": money(totals.master),
                "publishing": money(totals.publishing),
            },
            "auxiliary_by_module": [
                (module, money(amount)) for module, amount in totals.auxiliary_by_module.items()
            ],
            "statement": statement,
            "months": [
                {
                    **vars(m),
                    "money": _money_row(vars(m), money),
                    "statement": statements.get(m.period),
                }
                for m in reversed(months)
            ],
            "recordings": [{**row, "money": _money_row(row, money)} for row in recordings],
            "month_chart": stacked_bars(month_items, formatter=money),
            "recording_chart": stacked_bars(
                recording_items, formatter=money, orientation="horizontal"
            ),
            "recordings_charted": min(len(recordings), CHART_RECORDINGS),
            "csv_url": csv_url,
            "currency_query": currency_query,
            "other_currency": bool(currency_query),
        },
    )


def _money_row(row: dict, money) -> dict[str, str]:
    return {key: money(row[key]) for key in ("ita", "tda", "auxiliary", "total")}


def _default_currency() -> str:
    return currency_checked(None)


@login_required
def holder_prices(request: HttpRequest, holder_id: int) -> HttpResponse:
    """The holder's price floors in force and a form to set one (POST, then redirect): for
    one recording or as the default for all, per level and distribution, in major units."""
    holder = holder_readable_by(user=request.user, holder_id=holder_id)
    currency = currency_checked(request.GET.get("currency") or request.POST.get("currency"))
    if request.method == "POST":
        recording_id = request.POST.get("recording") or ""
        floor = price_floor_set(
            actor=request.user,
            holder=holder,
            recording=recording_get(recording_id=_whole(recording_id, "recording"))
            if recording_id
            else None,
            level=request.POST.get("level", ""),
            distribution=request.POST.get("distribution", ""),
            amount_minor=selectors.parse_major(request.POST.get("amount", ""), currency),
            currency=currency,
        )
        what = "lifted" if floor.amount_minor == 0 else "set"
        messages.success(request, f"Minimum price {what}.")
        return redirect("portal-prices", holder.pk)
    money = partial(selectors.format_minor, currency=currency)
    return render(
        request,
        "royalties/prices.html",
        {
            "holder": holder,
            "currency": currency,
            "floors": [
                {"floor": f, "amount": money(f.amount_minor)}
                for f in selectors.holder_price_floors(holder=holder)
                if f.currency == currency
            ],
            "recordings": holder_recordings_any_side(holder=holder),
            "levels": Level.choices,
            "distributions": Distribution.choices,
        },
    )


def _whole(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{name} must be an id", details={name: value}) from None
