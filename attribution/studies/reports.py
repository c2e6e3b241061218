"""Study reports on disk (CSV, JSON, PNG under TDA_STATE_DIR/reports/<command>-<UTC time>/),
and the listing the staff pages show."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from config.exceptions import Conflict, NotFound

REPORT_NAME = re.compile(r"^(tda|audit)_[a-z_]+-\d{8}-\d{6}(-\d+)?$")  # audit: seed 003
REPORT_FILE = re.compile(r"^[A-Za-z0-9_.-]+\.(png|csv|json)$")


# -- reports ---------------------------------------------------------------------------------


def reports_root() -> Path:
    return Path(settings.TDA_STATE_DIR) / "reports"


def report_directory(command: str) -> Path:
    """A new directory reports/<command>-<UTC time>[-n]/."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    root = reports_root()
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = root / (f"{command}-{stamp}" if n == 1 else f"{command}-{stamp}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise Conflict(f"too many {command} reports at {stamp}")


def json_value(value: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_value(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(json_value(data), indent=1, sort_keys=True))
    return path


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            values = [json_value(row.get(c)) for c in columns]
            writer.writerow(["" if v is None else v for v in values])
    return path


@dataclass
class StudyReport:
    directory: Path
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    files: list[Path]


@dataclass(frozen=True)
class ReportListing:
    name: str
    command: str
    created: str
    images: list[str]
    data: list[str]
    summary: dict[str, Any]


def tda_reports() -> list[ReportListing]:
    """Saved study reports, newest first, with their figures and data files."""
    root = reports_root()
    if not root.is_dir():
        return []
    listings = []

    def written(path: Path) -> tuple[str, int]:  # the name's second, then the file clock
        summary = path / "summary.json"
        return path.name.split("-", 1)[-1], summary.stat().st_mtime_ns if summary.is_file() else 0

    for path in sorted(root.iterdir(), key=written, reverse=True):
        if not path.is_dir() or not REPORT_NAME.match(path.name):
            continue
        files = sorted(p.name for p in path.iterdir() if p.is_file() and REPORT_FILE.match(p.name))
        summary: dict[str, Any] = {}
        if (path / "summary.json").is_file():
            try:
                summary = json.loads((path / "summary.json").read_text())
            except (OSError, ValueError):
                summary = {}
        listings.append(
            ReportListing(
                name=path.name,
                command=path.name.split("-", 1)[0],
                created=str(summary.get("created", "")),
                images=[f for f in files if f.endswith(".png")],
                data=[f for f in files if not f.endswith(".png")],
                summary=dict(summary.get("headline", {})),
            )
        )
    return listings


def tda_report_file(*, report: str, filename: str) -> Path:
    """A file of a saved report (only names the listing shows; no path escapes)."""
    if not REPORT_NAME.match(report) or not REPORT_FILE.match(filename):
        raise NotFound("no such report file")
    path = reports_root() / report / filename
    if not path.is_file():
        raise NotFound("no such report file")
    return path
