"""`manage.py drill_workers`: kill -9 worker pools mid-job and measure that nothing strands a
maker (benchmarks/worker_drill.py). Runs real pools against the configured database: use it
on the demo stack with `make demo` stopped (the drill starts its own pools)."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from benchmarks.worker_drill import Drill, DrillConfig


class Command(BaseCommand):
    help = "Kill worker pools mid-job; print submit-to-running and how every job ended."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--kills", type=int, default=3, help="kills per kind of job")
        parser.add_argument("--latency-runs", type=int, default=10)
        parser.add_argument("--seconds", type=float, default=10.0, help="of each generation")
        parser.add_argument("--json", type=Path, dest="json_path", help="write the report here")
        parser.add_argument(
            "--kinds", default="generation,generation-child,tda,audit",
            help="jobs to kill workers under (comma-separated)",
        )  # fmt: skip
        parser.add_argument("--no-latency", action="store_true", help="kills only")

    def handle(self, *args, kills, latency_runs, seconds, json_path: Path | None, **options):
        if kills < 0 or latency_runs < 1 or seconds <= 0:
            raise CommandError("--kills >= 0, --latency-runs >= 1 and --seconds > 0")
        kinds = tuple(k.strip() for k in options["kinds"].split(",") if k.strip())
        unknown = set(kinds) - set(DrillConfig.kinds)
        if unknown:
            raise CommandError(
                f"unknown --kinds {sorted(unknown)}; choose from {DrillConfig.kinds}"
            )
        config = DrillConfig(kills=kills, latency_runs=latency_runs, seconds=seconds,
                             kinds=kinds, latency=not options["no_latency"])  # fmt: skip
        try:
            report = Drill(config, out=self.stdout.write).run()
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        latency = report.get("latency")
        if latency:
            self.stdout.write(
                f"\nsubmit -> running while TDA runs: median {latency['median_s']:.2f} s, "
                f"p95 {latency['p95_s']:.2f} s, max {latency['max_s']:.2f} s "
                f"over {latency['runs']} generations ({latency['tda_running_at_start']} with "
                "TDA running)"
            )
        for row in report["kills"]:
            self.stdout.write(
                f"kill during {row['kind']:<10} ({row.get('stage', '-')}): {row['status']}"
                f" after {row.get('seconds_to_end')} s, attempts {row.get('attempts')}"
            )
        self.stdout.write(f"integrity: {report['integrity']}")
        if json_path:
            json_path.write_text(json.dumps(report, indent=2, sort_keys=True))
