"""The payout pages of the rights-holder portal: a month's statement (direct vs TDA vs
auxiliary), monthly history, charts as accessible inline SVG, per recording, CSV link; the
selectors and chart helper behind them."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from royalties.charts import stacked_bars
from royalties.selectors import format_minor, holder_monthly_totals, months_back
from royalties.services import (
    ChargedReference,
    generation_fee_post,
    statement_close,
    tda_pool_settle,
)

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def payouts_url(holder) -> str:
    return f"/portal/holders/{holder.pk}/payouts/"


def charge(rights, ref: str, *, settle: bool = True) -> None:
    """A commercial song-level generation (1000 cents: 600 direct, 200 TDA pool, 100
    auxiliary, 100 platform) referencing the solo recording, trained on it."""
    generation_fee_post(
        generation_ref=ref,
        verified_at=timezone.now(),
        distribution="commercial",
        references=[ChargedReference(rights["solo"].pk, "song", 1.0)],
        training_recording_ids=[rights["solo"].pk],
    )
    if settle:
        tda_pool_settle(generation_ref=ref, shares={rights["solo"].pk: 1.0})


def last_month_day() -> timezone.datetime:
    return (timezone.now().replace(day=1) - timedelta(days=1)).replace(day=15)


def test_monthly_totals_group_entries_by_month_in_minor_units(pricing, rights, monkeypatch):
    earlier = last_month_day()
    monkeypatch.setattr("django.utils.timezone.now", lambda: earlier)
    charge(rights, "gen-old")
    monkeypatch.undo()
    charge(rights, "gen-new-1")
    charge(rights, "gen-new-2", settle=False)

    months = holder_monthly_totals(holder=rights["holder_a"], currency="EUR")
    this_month = timezone.now().date().replace(day=1)
    assert [m.period for m in months] == [earlier.date().replace(day=1), this_month]
    old, new = months
    assert (old.ita, old.tda, old.auxiliary, old.total) == (600, 200, 100, 900)
    assert (new.ita, new.tda, new.auxiliary, new.total) == (1200, 200, 200, 1600)
    only_new = holder_monthly_totals(
        holder=rights["holder_a"], currency="EUR", since=this_month, until=this_month
    )
    assert only_new == [new]
    assert holder_monthly_totals(holder=rights["holder_b"], currency="EUR") == []


def test_months_back_crosses_years():
    assert months_back(date(2026, 3, 1), 12) == date(2025, 4, 1)
    assert months_back(date(2026, 1, 1), 1) == date(2026, 1, 1)
    assert months_back(date(2026, 1, 1), 2) == date(2025, 12, 1)


def test_payout_page_shows_the_months_split_per_recording_chart_and_csv_link(pricing, rights):
    charge(rights, "gen-1")
    charge(rights, "gen-2")
    holder = rights["holder_a"]
    page = client_for(rights["member_a"]).get(payouts_url(holder))
    html = page.content.decode()
    assert page.status_code == 200
    period = f"{timezone.now():%Y-%m}"
    assert f'<option value="{period}" selected>' in html
    assert 'data-component="ita">12.00<' in html
    assert 'data-component="tda">4.00<' in html
    assert 'data-component="auxiliary">2.00<' in html
    assert 'data-component="total"><strong>18.00</strong>' in html
    assert 'badge warn">open' in html
    row = html.split(f'data-recording="{rights["solo"].pk}"')[1].split("</tr>")[0]
    assert "Solo Song" in row and ">2<" in row and "18.00" in row  # 2 generations
    assert html.count('role="img"') == 2 and '<title id="months-chart-title">' in html
    assert "Solo Song: Direct (ITA) 12.00" in html  # the per-recording chart's tooltip
    csv_link = f"/api/royalties/holders/{holder.pk}/payouts.csv?period={period}"
    assert f'href="{csv_link}"' in html

    csv = client_for(rights["member_a"]).get(csv_link)
    assert csv.status_code == 200 and "GenerativeReference" in csv.content.decode()


def test_closed_month_shows_its_statement_and_other_months_stay_listed(
    pricing, rights, staff, monkeypatch
):
    earlier = last_month_day()
    monkeypatch.setattr("django.utils.timezone.now", lambda: earlier)
    charge(rights, "gen-old")
    monkeypatch.undo()
    charge(rights, "gen-new")
    holder = rights["holder_a"]
    statement_close(actor=staff, holder=holder, period=earlier.date().replace(day=1))

    client = client_for(rights["member_a"])
    latest = client.get(payouts_url(holder)).content.decode()
    assert f"{timezone.now():%B %Y}" in latest and f"{earlier:%B %Y}" in latest
    by_month = latest.split('class="payouts-by-month"')[1]
    assert by_month.count('badge ok">closed') == 1 and by_month.count('badge warn">open') == 1

    closed = client.get(payouts_url(holder), {"period": f"{earlier:%Y-%m}"}).content.decode()
    heading = closed.split('id="statement-heading"')[1].split("</h2>")[0]
    assert f"Statement for {earlier:%B %Y}" in heading and 'badge ok">closed' in heading
    assert 'data-component="total"><strong>9.00</strong>' in closed


def test_month_without_payouts_and_bad_requests(pricing, rights, make_user):
    holder = rights["holder_a"]
    client = client_for(rights["member_a"])
    empty = client.get(payouts_url(holder), {"period": "2024-02"})
    assert empty.status_code == 200 and b"No payouts in February 2024" in empty.content
    assert b'data-component="total"><strong>0.00</strong>' in empty.content
    assert b"No payouts in the 12 months up to February 2024" in empty.content
    assert b'role="img"' not in empty.content
    assert client.get(payouts_url(holder), {"period": "2024-13"}).status_code == 400
    assert client.get(payouts_url(holder), {"currency": "ZZZ"}).status_code == 400
    assert client_for(rights["member_b"]).get(payouts_url(holder)).status_code == 404
    assert client.get("/portal/holders/999999/payouts/").status_code == 404
    assert Client().get(payouts_url(holder)).status_code == 302  # sign in first


def test_stacked_bars_are_proportional_and_skip_empty_parts():
    money = lambda amount: format_minor(amount, "EUR")  # noqa: E731
    chart = stacked_bars(
        [("a", {"ita": 600, "tda": 200, "auxiliary": 100}), ("b", {"ita": 450}), ("c", {})],
        formatter=money,
    )
    a, b, c = chart.bars
    assert [s.series for s in a.segments] == ["ita", "tda", "auxiliary"]
    assert a.total == "9.00" and b.total == "4.50" and c.total == "0.00" and not c.segments
    assert not chart.empty and stacked_bars([("z", {})], formatter=money).empty
    tallest = sum(s.height for s in a.segments)
    assert sum(s.height for s in b.segments) == pytest.approx(tallest / 2)
    assert a.segments[0].height == pytest.approx(3 * a.segments[1].height)
    assert a.segments[0].y > a.segments[1].y > a.segments[2].y  # stacked upwards

    rows = stacked_bars(
        [("x", {"ita": 100, "tda": 100})], formatter=money, orientation="horizontal"
    )
    (x,) = rows.bars
    first, second = x.segments
    assert second.x == pytest.approx(first.x + first.width) and first.width == second.width
