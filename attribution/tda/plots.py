"""PNG figures of the TDA studies (seed 000 Table 1 as bars, Fig. 1, Fig. 2, fast path).

matplotlib's object API (`Figure`, rendered by Agg) with no pyplot state, so it works in worker
processes and threads without a display; matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attribution.report_figures import new_figure, save_png

METHOD_LABELS = {
    "unlearning": "unlearning (exact)",
    "clap": "CLAP (windowed max)",
    "activation": "DiT activations (LPIPS-like)",
    "rps": "RPS",
    "fast": "fast path (first order)",
}


def _finite(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def plot_self_influence(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Per grid setting: mean R(z_tar) (log axis, 1 is best; padded targets beside it),
    CLAP_topk / CLAP_botk, and the FD of samples before vs after unlearning."""
    labels = [f"{r['setting']} bank {r.get('bank', 0)}" for r in rows]
    x = np.arange(len(rows))
    from matplotlib.ticker import ScalarFormatter

    figure, (rank_ax, clap_ax, fd_ax) = new_figure(max(8.0, 0.7 * len(rows)), 11.0, rows=3)
    rank = _finite([r["mean_rank"] for r in rows])
    padded = _finite([r.get("mean_rank_padded") for r in rows])
    rank_ax.bar(x - 0.2, rank, 0.4, label="k-means targets")
    if np.any(np.isfinite(padded)):
        rank_ax.bar(x + 0.2, padded, 0.4, label="short padded targets")
    rank_ax.set_yscale("log")
    highest = np.nanmax(np.concatenate([rank, padded])) if np.any(np.isfinite(rank)) else 1.0
    rank_ax.set_ylim(0.8, max(2.0, 1.5 * highest))
    rank_ax.axhline(1.0, color="black", linewidth=0.8)
    rank_ax.set_title("mean R(z_tar) (1 = best)")
    rank_ax.legend(fontsize="small")
    clap_ax.bar(x - 0.2, _finite([r["clap_topk"] for r in rows]), 0.4, label="top-k")
    clap_ax.bar(x + 0.2, _finite([r["clap_botk"] for r in rows]), 0.4, label="bottom-k")
    clap_ax.set_title("CLAP cosine to the target")
    clap_ax.legend(fontsize="small")
    fd_ax.bar(x, _finite([r.get("fd") for r in rows]), 0.6, color="tab:gray")
    fd_ax.set_title("FD (CLAP) samples theta0 vs theta_u")
    rank_ax.yaxis.set_major_formatter(ScalarFormatter())
    for axis in (rank_ax, clap_ax, fd_ax):
        axis.set_xticks(x, labels if axis is fd_ax else [], rotation=60, ha="right")
    return save_png(figure, path)


def plot_normalised_views(views: Mapping[str, Mapping[str, np.ndarray]], path: Path) -> Path:
    """Seed 000 Fig. 1: training items sorted by unlearning score (x), each method's min-max
    (left) and softmax (right, log axis) scores: mean over outputs, shaded +- one std."""
    figure, axes = new_figure(12.0, 4.5, 2)
    for axis, view in zip(axes, ("minmax", "softmax"), strict=True):
        for name, values in views[view].items():
            values = np.asarray(values, dtype=np.float64)  # (outputs, N)
            rank = np.arange(1, values.shape[1] + 1)
            mean, std = values.mean(axis=0), values.std(axis=0)
            axis.plot(rank, mean, label=METHOD_LABELS.get(name, name))
            low = mean - std
            if view == "softmax":  # a log axis cannot show <= 0
                low = np.maximum(low, mean.min() * 1e-3)
            axis.fill_between(rank, low, mean + std, alpha=0.2)
        axis.set_xlabel("training items, by descending unlearning score")
        axis.set_title(f"{view} normalisation")
        if view == "softmax":
            axis.set_yscale("log")
    axes[0].legend(fontsize="small")
    return save_png(figure, path)


def plot_correlation(names: Sequence[str], matrix: np.ndarray, path: Path) -> Path:
    """Seed 000 Fig. 2: Pearson correlation between the methods' scores."""
    size = max(4.5, 1.3 * len(names))
    figure, (axis,) = new_figure(size + 1.5, size)
    image = axis.imshow(np.asarray(matrix, dtype=np.float64), vmin=-1, vmax=1, cmap="RdBu_r")
    labels = [METHOD_LABELS.get(n, n) for n in names]
    axis.set_xticks(range(len(names)), labels, rotation=40, ha="right", fontsize="small")
    axis.set_yticks(range(len(names)), labels, fontsize="small")
    for i in range(len(names)):
        for j in range(len(names)):
            value = matrix[i][j]
            text = "n/a" if not np.isfinite(value) else f"{value:.2f}"
            colour = "white" if np.isfinite(value) and abs(value) > 0.6 else "black"
            axis.text(j, i, text, ha="center", va="center", fontsize="small", color=colour)
    figure.colorbar(image, ax=axis, shrink=0.8)
    axis.set_title("Pearson correlation (mean over outputs)")
    return save_png(figure, path)


def plot_fast_path(
    exact: Sequence[np.ndarray], fast: Sequence[np.ndarray], summary: Mapping[str, Any], path: Path
) -> Path:
    """Fast-path estimates against exact scores, each output standardised (so outputs share one
    axis), with the speed-up and Spearman in the title."""
    figure, (axis,) = new_figure(5.5, 5.0)
    for e, f in zip(exact, fast, strict=True):
        e, f = np.asarray(e, dtype=np.float64), np.asarray(f, dtype=np.float64)
        ez = (e - e.mean()) / (e.std() or 1.0)
        fz = (f - f.mean()) / (f.std() or 1.0)
        axis.scatter(ez, fz, s=12, alpha=0.7)
    axis.axline((0, 0), slope=1, color="black", linewidth=0.8)
    axis.set_xlabel("exact unlearning score (z-score per output)")
    axis.set_ylabel("fast-path estimate (z-score per output)")
    axis.set_title(
        f"speed-up {summary.get('mean_speedup', float('nan')):.1f}x, "
        f"Spearman {summary.get('mean_spearman', float('nan')):.2f} "
        f"({summary.get('outputs', 0)} outputs)",
        fontsize="medium",
    )
    return save_png(figure, path)
