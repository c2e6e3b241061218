"""python manage.py tda_hub_watch: how often each training recording is paid by training-time
attribution against its expected rate, hubs (flagged) first. The same report as the staff
page /attribution/hubs/ (attribution.selectors.tda_hub_watch), for operators and cron jobs:
`--json PATH` keeps it as a file.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from attribution.selectors import tda_hub_watch
from config.exceptions import DomainError


def _cell(value: float | None, spec: str, width: int) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}{spec}}"


class Command(BaseCommand):
    help = (
        "TDA hub watch: per training recording of a model version, how many generations paid "
        "it (paid top-k), its rate against the expected k_bar/N, the ratio and binomial z; "
        "flagged when ratio >= --flag-ratio and z >= --min-z."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--model-version", type=int, help="id (default: the one with the most done jobs)"
        )
        parser.add_argument("--flag-ratio", type=float, default=3.0, help="rate / expected")
        parser.add_argument("--min-z", type=float, default=3.0, help="binomial z-score")
        parser.add_argument(
            "--json", dest="json_path", type=Path, metavar="PATH", help="also write the report"
        )
        parser.add_argument("--top", type=int, help="rows to print (default: all)")

    def handle(
        self, *args, model_version, flag_ratio, min_z, json_path: Path | None, top, **options
    ):
        try:
            report = tda_hub_watch(
                model_version_id=model_version, flag_ratio=flag_ratio, min_z=min_z
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"model version {report['model_version_id']}: {report['generations']} generations "
            f"({report['unattributed']} unattributed, {report['skipped']} skipped), "
            f"{report['training_recordings']} training recordings, "
            f"k_bar {report['mean_paid']:.3f}, expected rate {report['expected_rate']:.4f}; "
            f"{report['flagged']} flagged (ratio >= {flag_ratio:g}, z >= {min_z:g}, at least "
            f"{report['min_generations']} generations)"
        )
        self.stdout.write(
            f"{'flag':<4}  {'paid':>5}  {'rate':>6}  {'mean share':>10}  {'expected':>8}  "
            f"{'ratio':>7}  {'z':>7}  recording"
        )
        for row in report["rows"][:top]:
            artist = f" ({row['artist']})" if row["artist"] else ""
            self.stdout.write(
                f"{'HUB' if row['flagged'] else '':<4}  {row['count']:>5}  {row['rate']:>6.3f}  "
                f"{row['mean_share']:>10.4f}  {row['expected_rate']:>8.4f}  "
                f"{_cell(row['ratio'], '.2f', 7)}  {_cell(row['z'], '.2f', 7)}  "
                f"{row['recording_id']}: {row['title']}{artist}"
            )
        if json_path is not None:
            _write_json(json_path, report)
            self.stdout.write(f"JSON: {json_path}")


def _write_json(path: Path, report: dict) -> None:
    try:
        path.write_text(json.dumps(report, indent=1))
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc}") from exc
