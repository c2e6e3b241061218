"""Matplotlib figures for study reports, drawn off-screen (no display on servers) and saved as
PNG. Plain module: both the TDA and the audit plots use it."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def new_figure(width: float, height: float, columns: int = 1, rows: int = 1):
    """(figure, flat list of axes) in inches, laid out by matplotlib's constrained layout."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    return figure, [axis for row in axes for axis in row]


def save_png(figure: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
