"""python manage.py bench_retrieval --sizes 10000,100000: HNSW retrieval benchmark.

Runs in its own database (`platform_bench`, same server as the configured one, embedded or
DATABASE_URL) so the demo data is never touched: creates it if missing, migrates it, loads
synthetic vectors into the real product tables per size, measures the product query
(`window_neighbours`, with and without the consent filter) against exact search and faiss,
prints a table per size and writes the figures as JSON under .state/bench/. The database is
dropped at the end unless --keep.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from benchmarks.database import benchmark_database, in_benchmark_database
from benchmarks.retrieval import TARGET, BenchConfig, format_report, run_size

BENCH_DATABASE = "platform_bench"
BENCH_TABLES = [
    "catalog_recordingwindowembedding",
    "catalog_recordingembedding",
    "catalog_currentconsent",
    "catalog_consentversion",
    "catalog_rightsshare",
    "catalog_recording",
    "catalog_encoderversion",
]


def _int_list(value: str) -> list[int]:
    try:
        numbers = [int(v.replace("_", "")) for v in value.split(",") if v.strip()]
    except ValueError:
        raise CommandError(f"expected a comma-separated list of integers, got '{value}'") from None
    if not numbers or any(n <= 0 for n in numbers):
        raise CommandError(f"expected positive integers, got '{value}'")
    return numbers


class Command(BaseCommand):
    help = (
        "Benchmark HNSW window retrieval (pgvector via the product query, consent filter, "
        "exact search, faiss) on synthetic vectors in a separate database."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--sizes", default="10000,100000", help="window counts, e.g. 10000,100000"
        )
        parser.add_argument("--queries", type=int, default=200)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--ef-search", default="40,100,200,400,800", help="hnsw.ef_search grid")
        parser.add_argument("--keep", action="store_true", help="keep the platform_bench database")
        parser.add_argument("--maintenance-work-mem", default="4GB")
        parser.add_argument("--no-faiss", action="store_true", help="skip the faiss comparison")
        parser.add_argument(
            "--local-dim",
            type=int,
            default=None,
            help="put the noise in a shared D-dimensional subspace (lower intrinsic dimension, "
            "closer to real embeddings); default: isotropic 512-d noise",
        )

    def log(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()

    def handle(self, *args, **options):
        sizes = _int_list(options["sizes"])
        ef_grid = tuple(_int_list(options["ef_search"]))
        if max(ef_grid) > 1000:
            raise CommandError("hnsw.ef_search can be at most 1000 (pgvector's limit)")
        run_tag = time.strftime("%Y%m%d-%H%M%S")
        results = []
        out_dir = Path(settings.STATE_DIR) / "bench"
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"retrieval-{run_tag}.json"
        with benchmark_database(BENCH_DATABASE, keep=options["keep"], log=self.log):
            for size in sizes:
                self._reset_tables()
                config = BenchConfig(
                    size=size,
                    queries=options["queries"],
                    seed=options["seed"],
                    ef_search=ef_grid,
                    maintenance_work_mem=options["maintenance_work_mem"],
                    faiss=not options["no_faiss"],
                    local_dim=options["local_dim"],
                    run_tag=run_tag,
                )
                result = run_size(config, log=self.log)
                results.append(result)
                for line in format_report(result):
                    self.log(line)
                self._write(path, run_tag, results)
                self.log(f"figures so far written to {path}")
        self.log("")
        self.log("summary (smallest ef_search reaching recall@10 >= 0.95):")
        self.log(
            f"{'N':>10s} {'build s':>8s} {'rows/s':>9s} {'ef':>4s} {'p50':>7s} {'p95':>7s} "
            f"{'recall':>6s} | {'filt ef':>7s} {'p50':>7s} {'p95':>7s} {'recall':>6s} | "
            f"{'faiss1t p50':>11s} {'ratio p50':>9s} | goal"
        )
        for r in results:
            self.log(_summary_line(r))
        self.log(f"JSON: {path}")

    def _reset_tables(self) -> None:
        if not in_benchmark_database(BENCH_DATABASE):  # never outside the bench database
            raise CommandError("refusing to truncate tables outside the benchmark database")
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(BENCH_TABLES)} RESTART IDENTITY CASCADE")

    def _write(self, path: Path, run_tag: str, results: list[dict]) -> None:
        payload = {
            "run": run_tag,
            "command": " ".join(sys.argv),
            "database": BENCH_DATABASE,
            "target": TARGET,
            "results": results,
        }
        path.write_text(json.dumps(payload, indent=2, default=str))


def _summary_line(r: dict) -> str:
    m = r["matched"]

    def cols(row, ef_width: int) -> str:
        if not row:
            return f"{'-':>{ef_width}s} {'-':>7s} {'-':>7s} {'-':>6s}"
        return (
            f"{row['ef_search']:{ef_width}d} {row['p50_ms']:7.2f} {row['p95_ms']:7.2f} "
            f"{row['recall_at_10']:6.3f}"
        )

    faiss_row = m.get("faiss_1_thread")
    ratio = m.get("ratio_pg_over_faiss_1_thread")
    faiss_p50 = f"{faiss_row['p50_ms']:.3f}" if faiss_row else "-"
    ratio_p50 = f"{ratio['p50']:.1f}x" if ratio else "-"
    goal = r["goal"]
    verdict = "PASS" if goal["pass"] else "MISS"
    if not goal["applies"]:
        verdict += " (reference only)"
    return (
        f"{r['size']:10,d} {r['hnsw_build']['seconds']:8.1f} {r['load']['rows_per_s']:9,.0f} "
        f"{cols(m['pg_unfiltered'], 4)} | {cols(m['pg_filtered'], 7)} | "
        f"{faiss_p50:>11s} {ratio_p50:>9s} | {verdict}"
    )
