"""python manage.py bench_royalties --entries 1000000: payout-report latency on a big ledger.

Runs in its own database (`platform_bench_royalties`, same server as the configured one) so
real data is never touched; prints the figures and writes them as JSON under .state/bench/.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from benchmarks.database import benchmark_database
from benchmarks.royalties import RoyaltyBenchConfig, run_benchmark

BENCH_DATABASE = "platform_bench_royalties"


class Command(BaseCommand):
    help = (
        "Build a ledger of N entries from real allocations in a separate database, time the "
        "payout report endpoints (p50/p95) and run the conservation check."
    )

    def add_arguments(self, parser):
        defaults = RoyaltyBenchConfig(entries=0)
        parser.add_argument("--entries", type=int, default=1_000_000)
        parser.add_argument("--holders", type=int, default=defaults.holders)
        parser.add_argument("--recordings", type=int, default=defaults.recordings)
        parser.add_argument("--requests", type=int, default=defaults.requests)
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument("--keep", action="store_true", help="keep the benchmark database")

    def log(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()

    def handle(self, *args, **options):
        if options["entries"] < 1000:
            raise CommandError("--entries must be at least 1000")
        if options["holders"] < 2 or options["recordings"] < 50:
            raise CommandError("need at least 2 holders and 50 recordings")
        config = RoyaltyBenchConfig(
            entries=options["entries"],
            holders=options["holders"],
            recordings=options["recordings"],
            requests=options["requests"],
            seed=options["seed"],
        )
        with benchmark_database(BENCH_DATABASE, keep=options["keep"], log=self.log):
            result = run_benchmark(config, log=self.log)
        out = (
            Path(settings.STATE_DIR) / "bench" / f"royalties-{time.strftime('%Y%m%d-%H%M%S')}.json"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"command": " ".join(sys.argv), **result}, indent=2))
        goal, c = result["goal"], result["conservation"]
        self.log("")
        self.log(
            f"ledger: {result['build']['entries']:,} entries in {result['transactions']:,} "
            f"transactions ({result['build']['generations']:,} generations), built in "
            f"{result['build']['seconds']} s"
        )
        holder = result["report_holder"]
        self.log(
            f"report for '{holder['holder']}' (a share of every recording), period "
            f"{holder['period']}: {holder['entries_in_period']:,} of its "
            f"{holder['entries_all_periods']:,} entries"
        )
        for name, figures in result["latency"].items():
            self.log(
                f"  {name:14s} p50 {figures['p50_ms']:8.2f} ms  p95 {figures['p95_ms']:8.2f} ms"
                f"  ({figures['requests']} requests through Django + DRF)"
            )
        self.log(
            f"conservation check over {c['transactions']:,} transactions / {c['entries']:,} "
            f"entries: {'OK' if c['ok'] else 'FAILED'} in {c['seconds']} s "
            f"(unbalanced {len(c['unbalanced'])}, negative holder totals "
            f"{len(c['negative_holder_totals'])}); pending TDA pool {c['pending_tda_pool']}"
        )
        cross = result["service_cross_check"]
        self.log(
            f"service cross-check: {cross['generations']} generations through "
            f"generation_fee_post, {cross['mismatches']} differ from the bulk path"
        )
        scope = "" if goal["applies"] else f" (goal is stated for {goal['entries']:,} entries)"
        self.log(
            f"GOAL p95 <= {goal['p95_ms']:.0f} ms: {'PASS' if goal['pass'] else 'MISS'} "
            f"(worst endpoint p95 {goal['worst_p95_ms']:.2f} ms){scope}"
        )
        self.log(f"JSON: {out}")
