"""Payout-report benchmark: a ledger of N entries built from real allocations, then the
report endpoints timed through the full Django/DRF stack, then the conservation check.

`run_benchmark` works on Django's default connection as it is (`bench_royalties` points that
at its own database first; tests use the test database) and returns JSON-ready figures.

How the ledger is built: a synthetic catalogue (holders, recordings with 1-3 holders each, one
label co-holding a share of every recording, as in the demo) and generations with 1-3
weighted references each. Every generation's entries come from the product's own allocation
(`allocate_fee`, `split_recording_rights`) and are written with COPY; a sample of generations
also goes through `generation_fee_post` itself, and both must agree. TDA pools are settled
for a fraction of generations. Bookings spread over `months` months.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from rest_framework.test import APIClient

from catalog.models import Artist, Recording, RightsHolder, RightsHolderMembership, RightsShare
from royalties import selectors
from royalties.allocation import (
    FeeSplit,
    RecordingRights,
    allocate_fee,
    split_largest_remainder,
    split_recording_rights,
)
from royalties.models import Account, Component, LedgerTransaction
from royalties.services import (
    ChargedReference,
    generation_fee_post,
    price_list_publish,
    split_policy_publish,
)

Log = Callable[[str], None]
GOAL = {"entries": 1_000_000, "p95_ms": 100.0}
LEVELS = ("song", "parameter", "audio", "temporal")
DISTRIBUTIONS = ("private", "non_commercial", "commercial")
PRICES = {  # cents; level x (private, non-commercial, commercial)
    "song": (100, 300, 1000),
    "parameter": (150, 450, 1500),
    "audio": (200, 600, 2000),
    "temporal": (250, 750, 2500),
}
SPLIT = FeeSplit(direct_bp=6000, tda_pool_bp=2000, auxiliary_bp=1000, platform_bp=1000)
PUBLISHING_BP = 5_000  # the default master/publishing parity


@dataclass(frozen=True)
class RoyaltyBenchConfig:
    entries: int
    holders: int = 500
    recordings: int = 5000
    training_recordings: int = 40
    months: int = 12
    tda_settled_fraction: float = 0.8
    service_sample: int = 50  # generations posted through the service and cross-checked
    requests: int = 60  # timed requests per endpoint
    seed: int = 0


def _timed(fn: Callable[[], object], repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 2),
        "mean_ms": round(statistics.fmean(times), 2),
        "requests": repeats,
    }


def _catalogue(config: RoyaltyBenchConfig, rng: random.Random, log: Log) -> dict:
    user_model = get_user_model()
    staff = user_model.objects.create_user("bench-staff", password="x", is_staff=True)
    artist = Artist.objects.create(name="Bench Artist")
    label = RightsHolder.objects.create(name="Bench Label", kind="organisation")
    holders = [label] + RightsHolder.objects.bulk_create(
        RightsHolder(name=f"Bench Holder {n}", kind="person") for n in range(config.holders - 1)
    )
    member = user_model.objects.create_user("bench-member", password="x")
    RightsHolderMembership.objects.create(user=member, holder=label)
    recordings = Recording.objects.bulk_create(
        Recording(
            title=f"Bench Recording {n}",
            artist=artist,
            isrc=f"QZBEN{n % 100:02d}{n:05d}",
            duration_seconds=120.0,
            audio_file=f"bench/{n}.ogg",
            audio_format="ogg",
            sample_rate=44100,
            channels=2,
            content_sha256=f"{n:064x}",
        )
        for n in range(config.recordings)
    )
    shares: dict[int, dict[int, int]] = {}
    rows = []
    for recording in recordings:
        artists = rng.sample(holders[1:], rng.randint(1, 2))
        split = split_largest_remainder(7000, {h.pk: rng.randint(1, 5) for h in artists})
        shares[recording.pk] = {label.pk: 3000, **split}
        rows += [
            RightsShare(recording=recording, holder_id=h, basis_points=bp)
            for h, bp in shares[recording.pk].items()
        ]
    RightsShare.objects.bulk_create(rows)
    log(f"catalogue: {len(holders)} holders, {len(recordings)} recordings, {len(rows)} shares")
    return {
        "staff": staff,
        "member": member,
        "label": label,
        "recordings": [r.pk for r in recordings],
        "shares": shares,
    }


@dataclass
class _Posting:
    """One transaction being built by the writer."""

    tx_id: int
    ref: str
    booked_at: datetime
    level: str


class _LedgerWriter:
    """Builds transactions + entries in memory from the product's allocation and COPYs them."""

    def __init__(self, next_tx_id: int) -> None:
        self.accounts: dict[tuple[str, int | None], int] = {}
        self.tx_id = next_tx_id
        self.transactions: list[tuple] = []
        self.entries: list[tuple] = []

    def account(self, kind: str, holder_id: int | None = None) -> int:
        key = (kind, holder_id)
        if key not in self.accounts:
            self.accounts[key] = Account.objects.get_or_create(
                kind=kind, holder_id=holder_id, currency="EUR"
            )[0].pk
        return self.accounts[key]

    def begin(
        self, key: str, kind: str, ref: str, booked_at: datetime, level: str, training=()
    ) -> _Posting:
        self.tx_id += 1
        row = (self.tx_id, key, kind, ref, "EUR", booked_at, "", json.dumps(list(training)))
        self.transactions.append(row)
        return _Posting(self.tx_id, ref, booked_at, level)

    def add(
        self, p: _Posting, kind: str, amount: int, component: str, holder=None, rec=None, side="",
        module="",
    ):  # fmt: skip
        if amount:
            self.entries.append(
                (p.tx_id, self.account(kind, holder), amount, "EUR", component, holder, rec,
                 side, module, p.ref, p.level, "commercial", p.booked_at)
            )  # fmt: skip

    def credit(
        self, p: _Posting, amount: int, rec: int, shares: dict, component: str, module: str = ""
    ) -> None:
        """Both sides of the recording: its master holders, and (no works registered in the
        benchmark catalogue) its publishing part unallocated, as the product posts them."""
        rights = RecordingRights(master=shares, works={})
        for part in split_recording_rights(amount, rights, PUBLISHING_BP):
            kind = "holder_payable" if part.holder_id else "unallocated"
            self.add(p, kind, -part.amount, component, part.holder_id, rec, part.side, module)

    def flush(self) -> None:
        with connection.cursor() as cursor:
            with cursor.cursor.copy(
                "COPY royalties_ledgertransaction (id, key, kind, generation_ref, currency, "
                "booked_at, memo, training_recording_ids) FROM STDIN"
            ) as copy:
                for row in self.transactions:
                    copy.write_row(row)
            with cursor.cursor.copy(
                "COPY royalties_ledgerentry (transaction_id, account_id, amount_minor, "
                "currency, component, holder_id, recording_id, side, module, generation_ref, "
                "level, distribution, booked_at) FROM STDIN"
            ) as copy:
                for row in self.entries:
                    copy.write_row(row)
        self.transactions.clear()
        self.entries.clear()


def _build_ledger(config: RoyaltyBenchConfig, rng: random.Random, catalogue: dict, log: Log):
    training = catalogue["recordings"][: config.training_recordings]
    shares = catalogue["shares"]
    now = datetime.now(UTC)
    start = now - timedelta(days=30 * config.months)
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM royalties_ledgertransaction")
        (max_id,) = cursor.fetchone()
    writer = _LedgerWriter(max_id)
    written = generations = flushed = 0
    started = time.perf_counter()
    while written < config.entries:
        generations += 1
        ref = f"bench-{generations}"
        level = rng.choice(LEVELS)
        fee = PRICES[level][2]
        picked = rng.sample(catalogue["recordings"], rng.randint(1, 3))
        weights = {rid: rng.randint(1, 4) for rid in picked}
        booked = start + (now - start) * rng.random()
        p = writer.begin(f"generation:{ref}:fee", "generation_fee", ref, booked, level, training)
        allocation = _fee_entries(writer, p, fee, weights, training, shares)
        if allocation.tda_pool and rng.random() < config.tda_settled_fraction:
            settled = min(booked + timedelta(minutes=rng.randint(1, 600)), now)
            p = writer.begin(f"generation:{ref}:tda", "tda_settlement", ref, settled, level)
            writer.add(p, "pending_tda_pool", allocation.tda_pool, Component.TDA_POOL)
            scores = {rid: rng.random() ** 4 for rid in training}
            for rid, part in split_largest_remainder(allocation.tda_pool, scores).items():
                writer.credit(p, part, rid, shares[rid], Component.TDA)
        if len(writer.entries) >= 50_000 or written + len(writer.entries) >= config.entries:
            flushed = len(writer.entries)
            with transaction.atomic():
                writer.flush()
            written += flushed
            rate = written / (time.perf_counter() - started)
            log(f"  {written:,} entries, {generations:,} generations ({rate:,.0f} entries/s)")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('royalties_ledgertransaction', 'id'), "
            "(SELECT MAX(id) FROM royalties_ledgertransaction))"
        )
    seconds = time.perf_counter() - started
    return {"entries": written, "generations": generations, "seconds": round(seconds, 1)}


def _fee_entries(writer: _LedgerWriter, p: _Posting, fee: int, weights, training, shares):
    """The entries of one generation fee, as the COPY path writes them."""
    allocation = allocate_fee(fee, SPLIT, weights, training)
    writer.add(p, "receivable", fee, Component.FEE)
    for rid, part in allocation.direct.items():
        writer.credit(p, part, rid, shares[rid], Component.ITA)
    for rid, part in allocation.auxiliary.items():  # one module: the generator
        writer.credit(p, part, rid, shares[rid], Component.AUXILIARY, module="generator")
    writer.add(p, "pending_tda_pool", -allocation.tda_pool, Component.TDA_POOL)
    writer.add(p, "platform_revenue", -allocation.platform, Component.PLATFORM)
    return allocation


def _service_cross_check(config: RoyaltyBenchConfig, rng: random.Random, catalogue: dict):
    """Generations posted through `generation_fee_post` must produce exactly the entries the
    COPY path would write for them (so the benchmark's ledger is the product's ledger)."""
    training = catalogue["recordings"][: config.training_recordings]
    writer = _LedgerWriter(0)
    mismatches = 0
    for n in range(config.service_sample):
        level = rng.choice(LEVELS)
        weights = {rid: rng.randint(1, 4) for rid in rng.sample(catalogue["recordings"], 2)}
        tx = generation_fee_post(
            generation_ref=f"service-{n}",
            verified_at=datetime.now(UTC),
            distribution="commercial",
            references=[ChargedReference(rid, level, float(w)) for rid, w in weights.items()],
            training_recording_ids=training,
        )
        got = sorted(
            tx.entries.values_list("account_id", "amount_minor", "component", "holder_id",
                                   "recording_id", "side", "module")
        )  # fmt: skip
        writer.entries.clear()
        p = _Posting(0, tx.generation_ref, tx.booked_at, level)
        _fee_entries(writer, p, PRICES[level][2], weights, training, catalogue["shares"])
        expected = sorted((e[1], e[2], e[4], e[5], e[6], e[7], e[8]) for e in writer.entries)
        mismatches += got != expected
    return {"generations": config.service_sample, "mismatches": mismatches}


def run_benchmark(config: RoyaltyBenchConfig, log: Log) -> dict:
    rng = random.Random(config.seed)
    since = datetime.now(UTC) - timedelta(days=31 * (config.months + 1))
    catalogue = _catalogue(config, rng, log)
    staff = catalogue["staff"]
    price_list_publish(
        actor=staff,
        tiers={(lv, di): PRICES[lv][n] for lv in LEVELS for n, di in enumerate(DISTRIBUTIONS)},
        effective_from=since,
    )
    split_policy_publish(
        actor=staff, effective_from=since, publishing_bp=PUBLISHING_BP, **asdict(SPLIT)
    )
    cross_check = _service_cross_check(config, rng, catalogue)
    log(f"service cross-check: {cross_check}")
    log(f"building {config.entries:,} ledger entries from real allocations (COPY)")
    build = _build_ledger(config, rng, catalogue, log)
    log(f"built {build['entries']:,} entries in {build['seconds']} s")
    # An old ledger has been vacuumed (autovacuum): the visibility map lets reports use
    # index-only scans. Inside a transaction (tests) only ANALYZE is possible.
    analyze = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
    with connection.cursor() as cursor:
        cursor.execute(f"{analyze} royalties_ledgerentry")
        cursor.execute(f"{analyze} royalties_ledgertransaction")

    label = catalogue["label"]
    busiest = _busiest_month(label)
    # the first allowed host, as a browser would send it (local settings refuse 'testserver')
    api = APIClient(SERVER_NAME=(settings.ALLOWED_HOSTS or ["localhost"])[0].lstrip("."))
    api.force_authenticate(catalogue["member"])
    base = f"/api/royalties/holders/{label.pk}/payouts"
    params = {"period": busiest["period"]}
    endpoints = {
        "summary": f"{base}/",
        "by_recording": f"{base}/recordings/",
        "by_generation": f"{base}/generations/",
        "csv": f"{base}.csv",
    }
    latency = {}
    for name, url in endpoints.items():
        response = api.get(url, params)
        assert response.status_code == 200, (name, response.content[:300])
        latency[name] = _timed(lambda url=url: api.get(url, params), config.requests)
        figures = latency[name]
        log(f"  {name:14s} p50 {figures['p50_ms']:8.2f} ms   p95 {figures['p95_ms']:8.2f} ms")

    started = time.perf_counter()
    conservation = selectors.ledger_conservation_check()
    check_seconds = time.perf_counter() - started
    totals = LedgerTransaction.objects.count()
    worst_p95 = max(v["p95_ms"] for v in latency.values())
    return {
        "config": asdict(config),
        "build": build,
        "transactions": totals,
        "service_cross_check": cross_check,
        "report_holder": {"holder": label.name, **busiest},
        "latency": latency,
        "conservation": {
            "ok": conservation.ok,
            "transactions": conservation.transactions,
            "entries": conservation.entries,
            "unbalanced": conservation.unbalanced_transactions,
            "negative_holder_totals": conservation.negative_holder_totals,
            "pending_tda_pool": conservation.pending_tda_pool,
            "seconds": round(check_seconds, 2),
        },
        "goal": {
            **GOAL,
            "applies": build["entries"] >= GOAL["entries"],
            "worst_p95_ms": worst_p95,
            "pass": worst_p95 <= GOAL["p95_ms"] and conservation.ok,
        },
    }


def _busiest_month(holder: RightsHolder) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT to_char(date_trunc('month', booked_at AT TIME ZONE 'UTC'), 'YYYY-MM'), "
            "count(*) FROM royalties_ledgerentry WHERE holder_id = %s "
            "GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
            [holder.pk],
        )
        period, count = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM royalties_ledgerentry WHERE holder_id = %s", [holder.pk]
        )
        (all_entries,) = cursor.fetchone()
    return {"period": period, "entries_in_period": count, "entries_all_periods": all_entries}
