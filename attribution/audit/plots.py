"""PNG figures of the similarity audit: the calibration histogram (seed 003 Table 1's
histograms with the bins), recall under perturbations (Figure 1) and a model's outputs
(Tables 2 and 3). matplotlib's object API (Agg) without pyplot state, imported when drawing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attribution.audit.robustness import KIND_TITLES
from attribution.report_figures import new_figure, save_png

THRESHOLD_STYLES = {
    "random": ("tab:gray", ":"),
    "mean": ("tab:green", "--"),
    "mean+1sigma": ("tab:orange", "--"),
    "mean+2sigma": ("tab:red", "-"),
}


def _thresholds(axis: Any, thresholds: Mapping[str, float]) -> None:
    for name, value in thresholds.items():
        color, style = THRESHOLD_STYLES.get(name, ("black", "-."))
        axis.axvline(value, color=color, linestyle=style, label=f"{name} {value:.3f}")


def plot_calibration(
    histogram: Mapping[str, Sequence[float]], thresholds: Mapping[str, float], path: Path
) -> Path:
    """Top-neighbour and random-pair similarity histograms with the four thresholds."""
    figure, (axis,) = new_figure(7, 4)
    edges = np.asarray(histogram["edges"], dtype=float)
    centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    for key, label, color in (
        ("random", "random clip pairs", "tab:gray"),
        ("top", "top neighbours of random clips", "tab:blue"),
    ):
        counts = np.asarray(histogram[key], dtype=float)
        axis.bar(centres, counts / max(counts.sum(), 1), width=width, alpha=0.5, label=label,
                 color=color)  # fmt: skip
    _thresholds(axis, thresholds)
    axis.set_xlabel("cosine similarity of clips")
    axis.set_ylabel("share")
    axis.set_title("calibration (seed 003 section 4.1)")
    axis.legend(fontsize=7)
    return save_png(figure, path)


def plot_robustness(rows: Sequence[Mapping[str, Any]], path: Path, ks=(1, 5, 10)) -> Path:
    """One panel per perturbation kind: recall@k of the source recording per setting."""
    kinds = [k for k in KIND_TITLES if k != "none" and any(r["kind"] == k for r in rows)]
    baseline = next((r for r in rows if r["kind"] == "none"), None)
    columns = 3
    panels = max(1, len(kinds))
    figure, axes = new_figure(4.2 * columns, 3.2 * -(-panels // columns), columns,
                           -(-panels // columns))  # fmt: skip
    for axis, kind in zip(axes, kinds, strict=False):
        kind_rows = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["amount"])
        x = [r["amount"] * (100 if kind.startswith("mashup") else 1) for r in kind_rows]
        for k, marker in zip(ks, "osd", strict=False):
            axis.plot(x, [r[f"top{k}"] for r in kind_rows], marker=marker, label=f"top {k}")
        if baseline is not None:
            axis.axhline(baseline["top1"], color="gray", linestyle=":", label="unperturbed top 1")
        axis.set_ylim(-0.03, 1.03)
        axis.set_title(KIND_TITLES[kind], fontsize=9)
        axis.set_ylabel("recall of the source")
        axis.legend(fontsize=7)
    for axis in axes[len(kinds) :]:
        axis.set_visible(False)
    return save_png(figure, path)


def plot_model(
    reference: Sequence[float],
    training: Sequence[float],
    thresholds: Mapping[str, float],
    path: Path,
) -> Path:
    """Table 2 as histograms: outputs' similarity to their references and to their most
    similar training recording, with the calibrated thresholds."""
    figure, (axis,) = new_figure(7, 4)
    bins = np.linspace(-0.2, 1.0, 49)
    axis.hist([v for v in reference if v is not None], bins=bins, alpha=0.6,
              label="output vs its references (best)")  # fmt: skip
    axis.hist(list(training), bins=bins, alpha=0.6, label="output vs #1 training recording")
    _thresholds(axis, thresholds)
    axis.set_xlabel("cosine similarity (best clip pair)")
    axis.set_ylabel("outputs")
    axis.set_title("generated outputs (seed 003 section 5.2)")
    axis.legend(fontsize=7)
    return save_png(figure, path)
