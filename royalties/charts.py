"""Stacked bar charts as plain geometry for inline SVG templates (no JS, no chart library).

Amounts are integer minor units; only the drawing coordinates are floats. Each bar stacks
direct (ITA), TDA and auxiliary parts; negative parts (net reversals) are drawn as zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SERIES = (
    ("ita", "Direct (ITA)", "var(--ita)"),
    ("tda", "Training (TDA)", "var(--tda)"),
    ("auxiliary", "Auxiliary", "var(--aux)"),
)


@dataclass(frozen=True)
class Segment:
    series: str
    label: str
    colour: str
    amount: str  # formatted, for the tooltip
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Bar:
    label: str
    total: str
    segments: list[Segment]
    x: float  # label anchor
    y: float
    value_x: float
    value_y: float


@dataclass(frozen=True)
class Chart:
    """Everything an SVG template needs: view box size, bars, and the series for a legend."""

    orientation: str  # "vertical" (columns) | "horizontal" (rows)
    width: int
    height: int
    bars: list[Bar]
    series: list[tuple[str, str, str]] = field(default_factory=lambda: list(SERIES))
    baseline: tuple[float, float, float, float] = (0, 0, 0, 0)

    @property
    def empty(self) -> bool:
        return not any(bar.segments for bar in self.bars)


def stacked_bars(
    items: list[tuple[str, dict[str, int]]],
    *,
    formatter,
    orientation: str = "vertical",
    width: int = 520,
) -> Chart:
    """`items` are (label, {"ita": minor, "tda": minor, "auxiliary": minor}); `formatter`
    turns minor units into the text shown (e.g. format_minor with the currency)."""
    largest = max(
        (sum(max(parts.get(key, 0), 0) for key, _, _ in SERIES) for _, parts in items), default=0
    )
    scale_max = largest or 1
    bars = []
    if orientation == "vertical":
        height, top, bottom, left = 220, 22, 40, 4
        plot = height - top - bottom
        slot = (width - 2 * left) / max(len(items), 1)
        bar_width = min(slot * 0.6, 56)
        for n, (label, parts) in enumerate(items):
            x = left + n * slot + (slot - bar_width) / 2
            y = top + plot
            segments = []
            for key, name, colour in SERIES:
                h = plot * max(parts.get(key, 0), 0) / scale_max
                if h > 0:
                    y -= h
                    segments.append(
                        Segment(key, name, colour, formatter(parts.get(key, 0)), x, y, bar_width, h)
                    )
            total = sum(parts.get(key, 0) for key, _, _ in SERIES)
            bars.append(
                Bar(label, formatter(total), segments, x + bar_width / 2, top + plot + 16,
                    x + bar_width / 2, y - 6)
            )  # fmt: skip
        baseline = (left, top + plot, width - left, top + plot)
    else:
        row, label_width, right = 26, 150, 64
        height = max(len(items), 1) * row + 8
        plot = width - label_width - right
        for n, (label, parts) in enumerate(items):
            x, y = float(label_width), 4 + n * row
            segments = []
            for key, name, colour in SERIES:
                w = plot * max(parts.get(key, 0), 0) / scale_max
                if w > 0:
                    segments.append(
                        Segment(key, name, colour, formatter(parts.get(key, 0)), x, y, w, row - 8)
                    )
                    x += w
            total = sum(parts.get(key, 0) for key, _, _ in SERIES)
            bars.append(
                Bar(label, formatter(total), segments, label_width - 8, y + row / 2,
                    x + 6, y + row / 2)
            )  # fmt: skip
        baseline = (label_width, 0, label_width, height)
    return Chart(orientation, width, height, bars, baseline=baseline)
