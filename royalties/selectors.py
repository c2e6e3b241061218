"""Reads of the royalties app: prices in force, payout reports, the conservation check.

Payout amounts are what a holder is owed: the negated sum of the entries on its payable
account (payables are credited), booked inside the period.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Min, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncMonth

from catalog.models import Recording, RightsHolder
from catalog.selectors import holders_by_ids, recording_rights_shares, recordings_work_shares
from config.exceptions import InvalidInput
from royalties.models import (
    Account,
    Component,
    LedgerEntry,
    LedgerTransaction,
    PriceFloor,
    PriceList,
    Side,
    SplitPolicy,
    Statement,
)

PERIOD_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")
HOLDER_COMPONENTS = (Component.ITA, Component.TDA, Component.AUXILIARY)


def price_list_in_force(*, currency: str, at: datetime) -> PriceList:
    price_list = (
        PriceList.objects.filter(currency=currency, effective_from__lte=at)
        .order_by("-effective_from")
        .first()
    )
    if price_list is None:
        raise InvalidInput(f"no {currency} price list was in force at {at.isoformat()}")
    return price_list


def split_policy_in_force(*, at: datetime) -> SplitPolicy:
    policy = SplitPolicy.objects.filter(effective_from__lte=at).order_by("-effective_from").first()
    if policy is None:
        raise InvalidInput(f"no fee split policy was in force at {at.isoformat()}")
    return policy


def parse_period(value: str | None) -> date:
    """'YYYY-MM' -> the first day of that month."""
    match = PERIOD_PATTERN.match(value or "")
    if not match or not 1 <= int(match[2]) <= 12 or int(match[1]) < 2000:
        raise InvalidInput(
            f"period must be a month as YYYY-MM, got '{value or ''}'", details={"period": value}
        )
    return date(int(match[1]), int(match[2]), 1)


def period_bounds(period: date) -> tuple[datetime, datetime]:
    """[start, end) of the month in UTC, the ledger's booking clock."""
    start = datetime(period.year, period.month, 1, tzinfo=UTC)
    days = calendar.monthrange(period.year, period.month)[1]
    end = datetime.fromordinal(start.toordinal() + days).replace(tzinfo=UTC)
    return start, end


def period_of(moment: datetime) -> date:
    """The month (its first day, UTC) a booking falls in."""
    moment = moment.astimezone(UTC)
    return date(moment.year, moment.month, 1)


def _holder_entries(*, holder: RightsHolder, period: date, currency: str) -> QuerySet[LedgerEntry]:
    start, end = period_bounds(period)
    return LedgerEntry.objects.filter(
        holder=holder, currency=currency, booked_at__gte=start, booked_at__lt=end
    )


def _owed(component: str | None = None, *, side: str | None = None) -> Coalesce:
    condition = Q(component=component) if component else Q()
    if side == Side.MASTER:  # entries from before the publishing side paid masters only
        condition &= ~Q(side=Side.PUBLISHING)
    elif side is not None:
        condition &= Q(side=side)
    return Coalesce(-Sum("amount_minor", filter=condition), Value(0))


def _by_side() -> dict[str, Coalesce]:
    return {"master": _owed(side=Side.MASTER), "publishing": _owed(side=Side.PUBLISHING)}


def _net_usages(component: str | None = None) -> Count:
    """Generations that paid this holder, net of reversals, without a DISTINCT sort: each
    fee or settlement credits a holder once per recording and component (a negative entry),
    and only a reversal debits it (a positive one). Count within one component."""
    scope = Q(component=component) if component else Q()
    credits = Count("pk", filter=scope & Q(amount_minor__lt=0))
    return credits - Count("pk", filter=scope & Q(amount_minor__gt=0))


@dataclass(frozen=True)
class PeriodTotals:
    ita: int
    tda: int
    auxiliary: int
    total: int
    master: int
    publishing: int
    entry_count: int
    generations: int
    entries_sha256: str
    auxiliary_by_module: dict[str, int]


def holder_period_totals(
    *, holder: RightsHolder, period: date, currency: str, with_digest: bool = False
) -> PeriodTotals:
    """Totals owed in the period; `with_digest` adds a SHA-256 over the entries (statements)."""
    entries = _holder_entries(holder=holder, period=period, currency=currency)
    totals = entries.aggregate(
        ita=_owed(Component.ITA),
        tda=_owed(Component.TDA),
        auxiliary=_owed(Component.AUXILIARY),
        total=_owed(),
        **_by_side(),
        entry_count=Count("pk"),
        generations=Count("generation_ref", distinct=True),
    )
    digest = ""
    if with_digest:
        hasher = hashlib.sha256()
        rows = entries.order_by("pk").values_list("pk", "amount_minor").iterator(5000)
        for pk, amount in rows:
            hasher.update(f"{pk}:{amount};".encode())
        digest = hasher.hexdigest()
    by_module = (
        entries.filter(component=Component.AUXILIARY)
        .values("module")
        .annotate(owed=_owed())
        .order_by("-owed", "module")
    )
    auxiliary_by_module = {
        row["module"] or "generator (before modules were recorded)": row["owed"]
        for row in by_module
        if row["owed"]
    }
    return PeriodTotals(**totals, entries_sha256=digest, auxiliary_by_module=auxiliary_by_module)


def holder_statement(*, holder: RightsHolder, period: date, currency: str) -> Statement | None:
    return Statement.objects.filter(holder=holder, period=period, currency=currency).first()


def holder_payouts_by_recording(
    *, holder: RightsHolder, period: date, currency: str
) -> QuerySet[LedgerEntry]:
    """One row per recording: ITA / TDA / auxiliary amounts owed, and the generations that
    referenced it (net of reversals).
    Aggregates the entries alone (an index-only scan); `with_recording_details` adds titles
    to the rows of one page."""
    return (
        _holder_entries(holder=holder, period=period, currency=currency)
        .values("recording_id")
        .annotate(
            ita=_owed(Component.ITA),
            tda=_owed(Component.TDA),
            auxiliary=_owed(Component.AUXILIARY),
            total=_owed(),
            **_by_side(),
            generations=_net_usages(Component.ITA),
        )
        .order_by("-total", "recording_id")
    )


def with_recording_details(rows: list[dict]) -> list[dict]:
    """Title, ISRC and artist for payout rows keyed by `recording_id` (one query)."""
    ids = [row["recording_id"] for row in rows]
    details = {
        pk: {"title": title, "isrc": isrc, "artist": artist}
        for pk, title, isrc, artist in Recording.objects.filter(pk__in=ids).values_list(
            "pk", "title", "isrc", "artist__name"
        )
    }
    blank = {"title": "", "isrc": None, "artist": ""}
    return [{**row, **details.get(row["recording_id"], blank)} for row in rows]


def holder_payouts_by_generation(
    *, holder: RightsHolder, period: date, currency: str
) -> QuerySet[LedgerEntry]:
    return (
        _holder_entries(holder=holder, period=period, currency=currency)
        .values("generation_ref")
        .annotate(
            level=F("level"),
            distribution=F("distribution"),
            ita=_owed(Component.ITA),
            tda=_owed(Component.TDA),
            auxiliary=_owed(Component.AUXILIARY),
            total=_owed(),
            **_by_side(),
            recordings=Count("recording_id", distinct=True),
        )
        .order_by("-total", "generation_ref")
    )


CSV_COLUMNS = [
    "ISRC",
    "Title",
    "Artist",
    "UseType",
    "RightsType",
    "ISWC",
    "CommercialModel",
    "Usages",
    "Amount",
    "Currency",
    "Period",
]
USE_TYPES = {
    Component.ITA: "GenerativeReference",
    Component.TDA: "GenerativeTrainingAttribution",
    Component.AUXILIARY: "GenerativeTrainingAuxiliary",
}


# the side a line pays; lines from before the publishing side paid the master
RIGHTS_TYPES = {Side.MASTER: "Master", Side.PUBLISHING: "Publishing", "": "Master"}


def holder_payout_csv_rows(*, holder: RightsHolder, period: date, currency: str) -> list[list]:
    """DDEX-DSR-like lines: one per recording, use type and distribution. Amount in major
    units with the currency's decimals, exactly (from integer minor units)."""
    rows = (
        _holder_entries(holder=holder, period=period, currency=currency)
        .values("recording_id", "component", "side", "work__iswc", "distribution")
        .annotate(usages=_net_usages(), amount=_owed())
        .order_by("recording_id", "component", "side", "work__iswc", "distribution")
    )
    return [
        [
            row["isrc"] or "",
            row["title"],
            row["artist"],
            USE_TYPES.get(row["component"], row["component"]),
            RIGHTS_TYPES[row["side"]],
            row["work__iswc"] or "",
            row["distribution"],
            row["usages"],
            format_minor(row["amount"], currency),
            currency,
            f"{period:%Y-%m}",
        ]
        for row in with_recording_details(list(rows))
    ]


def parse_major(value: str, currency: str) -> int:
    """'12.50' -> 1250 minor units, exactly (a form's amount in major units)."""
    decimals = settings.ROYALTIES_CURRENCIES[currency]
    places = max(decimals, 1)
    match = re.fullmatch(rf"([0-9]{{1,15}})(?:\.([0-9]{{1,{places}}}))?", value.strip())
    if not match or (match[2] and decimals == 0):
        raise InvalidInput(
            f"amount must be a non-negative number with at most {decimals} decimals, got '{value}'",
            details={"amount": value},
        )
    return int(match[1]) * 10**decimals + int((match[2] or "").ljust(decimals, "0") or 0)


def format_minor(amount: int, currency: str) -> str:
    decimals = settings.ROYALTIES_CURRENCIES[currency]
    if decimals == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**decimals)
    return f"{sign}{whole}.{frac:0{decimals}d}"


@dataclass(frozen=True)
class ConservationReport:
    transactions: int
    entries: int
    unbalanced_transactions: list[int]
    negative_holder_totals: list[tuple[int, str, int]]
    pending_tda_pool: dict[str, int]

    @property
    def ok(self) -> bool:
        return not self.unbalanced_transactions and not self.negative_holder_totals


def ledger_conservation_check() -> ConservationReport:
    """Every transaction sums to zero; no holder is owed a negative amount overall."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), (SELECT count(*) FROM royalties_ledgertransaction) "
            "FROM royalties_ledgerentry"
        )
        entries, transactions = cursor.fetchone()
        cursor.execute(
            "SELECT transaction_id FROM royalties_ledgerentry GROUP BY transaction_id "
            "HAVING sum(amount_minor) <> 0 ORDER BY 1 LIMIT 100"
        )
        unbalanced = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            "SELECT holder_id, currency, -sum(amount_minor) FROM royalties_ledgerentry "
            "WHERE holder_id IS NOT NULL GROUP BY holder_id, currency "
            "HAVING -sum(amount_minor) < 0 ORDER BY 1 LIMIT 100"
        )
        negative = [(holder, currency, int(owed)) for holder, currency, owed in cursor.fetchall()]
        cursor.execute(
            "SELECT e.currency, -sum(e.amount_minor) FROM royalties_ledgerentry e "
            "JOIN royalties_account a ON a.id = e.account_id "
            "WHERE a.kind = 'pending_tda_pool' GROUP BY e.currency"
        )
        pending = {currency: int(amount) for currency, amount in cursor.fetchall()}
    return ConservationReport(transactions, entries, unbalanced, negative, pending)


# --- The payout pages of the rights-holder portal -------------------------------------------


@dataclass(frozen=True)
class MonthTotals:
    """What a holder is owed for one month, by component, in minor units."""

    period: date
    ita: int
    tda: int
    auxiliary: int
    total: int
    master: int = 0
    publishing: int = 0


def holder_monthly_totals(
    *, holder: RightsHolder, currency: str, since: date | None = None, until: date | None = None
) -> list[MonthTotals]:
    """Months with entries (oldest first), each with its ITA / TDA / auxiliary totals;
    `since` and `until` are months (first days), both included."""
    entries = LedgerEntry.objects.filter(holder=holder, currency=currency)
    if since is not None:
        entries = entries.filter(booked_at__gte=period_bounds(since)[0])
    if until is not None:
        entries = entries.filter(booked_at__lt=period_bounds(until)[1])
    rows = (
        entries.annotate(month=TruncMonth("booked_at", tzinfo=UTC))
        .values("month")
        .annotate(
            ita=_owed(Component.ITA),
            tda=_owed(Component.TDA),
            auxiliary=_owed(Component.AUXILIARY),
            total=_owed(),
            **_by_side(),
        )
        .order_by("month")
    )
    return [
        MonthTotals(
            row["month"].date(),
            row["ita"],
            row["tda"],
            row["auxiliary"],
            row["total"],
            row["master"],
            row["publishing"],
        )  # fmt: skip
        for row in rows
    ]


def holder_statements(*, holder: RightsHolder, currency: str) -> dict[date, Statement]:
    """The holder's closed statements by month."""
    return {s.period: s for s in Statement.objects.filter(holder=holder, currency=currency)}


def months_back(period: date, count: int) -> date:
    """The first day of the month `count - 1` months before `period` (a window of `count`)."""
    index = period.year * 12 + period.month - 1 - (count - 1)
    return date(index // 12, index % 12 + 1, 1)


# --- Holder-set price floors ------------------------------------------------------------------


def recordings_holder_ids(*, recording_ids: Iterable[int]) -> dict[int, set[int]]:
    """Every holder with a say in each recording: its master holders and the writers and
    publishers of the works it embodies."""
    ids = list(dict.fromkeys(recording_ids))
    masters = recording_rights_shares(recording_ids=ids)
    works = recordings_work_shares(recording_ids=ids)
    return {
        rid: set(masters[rid]) | {h for _, holders in works[rid].values() for h in holders}
        for rid in ids
    }


@dataclass(frozen=True)
class ReferenceFloor:
    """The highest floor in force on one reference, and whose it is."""

    recording_id: int
    holder_id: int
    amount_minor: int


def reference_floors(
    *, references: Iterable[tuple[int, str]], distribution: str, currency: str, at: datetime
) -> list[ReferenceFloor]:
    """Per (recording, level) reference, the highest floor its holders have in force at `at`
    for that level and distribution: a holder's floor for the recording if it set one, else
    its default. References without a floor are left out."""
    references = list(dict.fromkeys(references))
    holders = recordings_holder_ids(recording_ids=[rid for rid, _ in references])
    rows = PriceFloor.objects.filter(
        holder_id__in={h for ids in holders.values() for h in ids},
        distribution=distribution,
        currency=currency,
        created_at__lte=at,
        level__in={level for _, level in references},
    ).filter(Q(recording_id__in=list(holders)) | Q(recording__isnull=True))
    latest: dict[tuple[int, int | None, str], int] = {}
    for row in rows.order_by("created_at", "pk"):
        latest[(row.holder_id, row.recording_id, row.level)] = row.amount_minor
    floors = []
    for rid, level in references:
        best: ReferenceFloor | None = None
        for holder_id in sorted(holders[rid]):
            own = latest.get((holder_id, rid, level))
            amount = own if own is not None else latest.get((holder_id, None, level), 0)
            if amount and (best is None or amount > best.amount_minor):
                best = ReferenceFloor(rid, holder_id, amount)
        if best is not None:
            floors.append(best)
    return floors


def holder_price_floors(*, holder: RightsHolder) -> list[PriceFloor]:
    """The holder's floors in force now (lifted ones left out), defaults first."""
    latest: dict[tuple, PriceFloor] = {}
    for row in PriceFloor.objects.filter(holder=holder).order_by("created_at", "pk"):
        latest[(row.recording_id, row.level, row.distribution, row.currency)] = row
    in_force = [row for row in latest.values() if row.amount_minor]
    return sorted(in_force, key=lambda r: (r.recording_id is not None, r.recording_id or 0,
                                           r.level, r.distribution))  # fmt: skip


def holders_names(*, holder_ids: Iterable[int]) -> dict[int, str]:
    return {pk: holder.name for pk, holder in holders_by_ids(holder_ids=holder_ids).items()}


# --- Disputes: who a generation pays, and what it paid a holder ---------------------------------


def generation_payee_ids(
    *, generation_ref: str, components: Iterable[str] | None = None
) -> set[int]:
    """Holders a generation's postings credited (optionally only for some components)."""
    entries = LedgerEntry.objects.filter(generation_ref=generation_ref, holder__isnull=False)
    if components is not None:
        entries = entries.filter(component__in=list(components))
    return set(entries.values_list("holder_id", flat=True).distinct())


def holder_recent_generations(*, holder: RightsHolder, limit: int = 20) -> list[dict]:
    """The generations that credited `holder` most recently, with what each owes it now
    (direct, TDA, auxiliary; held amounts are not owed), newest first."""
    rows = (
        LedgerEntry.objects.filter(holder=holder)
        .exclude(generation_ref="")
        .values("generation_ref", "currency")
        .annotate(
            first_booked=Min("booked_at"),
            ita=_owed(Component.ITA),
            tda=_owed(Component.TDA),
            auxiliary=_owed(Component.AUXILIARY),
            total=_owed(),
        )
        .order_by("-first_booked", "generation_ref")
    )
    return list(rows[:limit])


def held_minor(
    *,
    generation_ref: str | None = None,
    recording_id: int | None = None,
    holder_id: int | None = None,
) -> int:
    """What live payout holds keep from holders now: of one generation, one recording, one
    holder, or any of these together."""
    entries = LedgerEntry.objects.filter(
        transaction__kind=LedgerTransaction.Kind.PAYOUT_HOLD,
        transaction__reversed_by__isnull=True,
        account__kind=Account.Kind.HOLDER_PAYABLE,
    )
    if generation_ref is not None:
        entries = entries.filter(generation_ref=generation_ref)
    if recording_id is not None:
        entries = entries.filter(recording_id=recording_id)
    if holder_id is not None:
        entries = entries.filter(holder_id=holder_id)
    return entries.aggregate(held=Coalesce(Sum("amount_minor"), Value(0)))["held"]


def generation_paid_by_recording(
    *, generation_ref: str, component: str, kinds: Iterable[str]
) -> dict[int, int]:
    """What the generation's live postings of `kinds` pay each recording for `component`
    (to holders or unallocated), net of corrections: {recording id: minor units}."""
    rows = (
        LedgerEntry.objects.filter(
            generation_ref=generation_ref,
            component=component,
            transaction__kind__in=list(kinds),
            transaction__reversed_by__isnull=True,
            recording__isnull=False,
        )
        .values("recording_id")
        .annotate(paid=-Sum("amount_minor"))
        .order_by("recording_id")
    )
    return {row["recording_id"]: row["paid"] for row in rows if row["paid"]}
