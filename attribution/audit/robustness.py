"""Seed 003 section 5 as plain code: the perturbation grid and recall of the source recording
(5.1), and the summaries of a model's outputs (5.2, Tables 2 and 3).

Each robustness case is one catalogue clip (the "target"). A perturbed version of it is
embedded and searched against the catalogue's clips; the case counts as found at k when the
target recording is among the k most similar recordings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from attribution.audit.clips import AuditError
from attribution.audit.perturb import (
    MASHUP_FRACTIONS,
    NOISE_DB,
    PITCH_SEMITONES,
    STRETCH_FACTORS,
    Perturbation,
    add_white_noise,
    mash_up,
    pitch_shift,
    time_stretch,
)

KS = (1, 5, 10)
KIND_TITLES = {
    "none": "unperturbed",
    "pitch": "pitch shift (semitones)",
    "stretch": "time stretch (duration factor)",
    "noise": "white noise (dB relative to the clip)",
    "mashup_catalogue": "mash-up: two catalogue clips (% target)",
    "mashup_outside": "mash-up: catalogue + outside audio (% target)",
    "mashup_generated": "mash-up: reference + its generated output (% reference)",
}


@dataclass(frozen=True)
class RobustnessConfig:
    pitch: Sequence[float] = PITCH_SEMITONES
    stretch: Sequence[float] = STRETCH_FACTORS
    noise: Sequence[float] = NOISE_DB
    mashup: Sequence[float] = MASHUP_FRACTIONS
    ks: Sequence[int] = KS

    def grid(self, *, outside: bool, generated: bool) -> list[Perturbation]:
        grid = [Perturbation("none", 0.0)]
        grid += [Perturbation("pitch", float(s)) for s in self.pitch]
        grid += [Perturbation("stretch", float(f)) for f in self.stretch]
        grid += [Perturbation("noise", float(d)) for d in self.noise]
        kinds = ["mashup_catalogue"]
        kinds += ["mashup_outside"] if outside else []
        kinds += ["mashup_generated"] if generated else []
        grid += [Perturbation(kind, float(f)) for kind in kinds for f in self.mashup]
        return grid


@dataclass
class Case:
    """A target clip and what its perturbations need, all mono at one sample rate.

    `segment` starts where the clip starts and is long enough for the slowest stretch;
    `other` is a clip of another catalogue recording, `outside` one from outside the
    catalogue, `generated` a clip of an output that had the target as a reference.
    """

    recording_id: int
    start_seconds: float
    clip: np.ndarray
    segment: np.ndarray
    other: np.ndarray | None = None
    outside: np.ndarray | None = None
    generated: np.ndarray | None = None
    meta: dict = field(default_factory=dict)


def perturbed(case: Case, perturbation: Perturbation, sample_rate: int, *, seed: int = 0):
    """The clip with `perturbation` applied, as long as the clip; None when the case lacks
    what the perturbation needs (e.g. no generated output for a reference mash-up)."""
    size = len(case.clip)
    kind, amount = perturbation.kind, perturbation.amount
    if kind == "none":
        return case.clip.copy()
    if kind == "pitch":
        return pitch_shift(case.clip, sample_rate, amount)
    if kind == "stretch":
        # stretch the audio that fills exactly one clip afterwards (0.8: 3.75 s -> 3 s)
        source = int(round(size / amount))
        if len(case.segment) < source:
            raise AuditError(
                f"the segment of recording {case.recording_id} is too short to stretch x{amount}"
            )
        stretched = time_stretch(case.segment[:source], amount)
        return np.pad(stretched, (0, max(0, size - len(stretched))))[:size]
    if kind == "noise":
        return add_white_noise(case.clip, amount, seed=seed)
    partner = {
        "mashup_catalogue": case.other,
        "mashup_outside": case.outside,
        "mashup_generated": case.generated,
    }.get(kind, False)
    if partner is False:
        raise AuditError(f"unknown perturbation kind {kind!r}")
    if partner is None:
        return None
    return mash_up(case.clip, partner[:size], amount)


def recall_rows(
    outcomes: Mapping[Perturbation, Sequence[int | None]], ks: Sequence[int] = KS
) -> list[dict]:
    """One row per setting: n cases and recall@k of the source (rank is 1-based; None =
    not among the recordings returned)."""
    rows = []
    for perturbation, ranks in outcomes.items():
        row = {
            "kind": perturbation.kind,
            "amount": perturbation.amount,
            "setting": perturbation.label,
            "n": len(ranks),
        }
        for k in ks:
            hits = sum(1 for r in ranks if r is not None and r <= k)
            row[f"top{k}"] = hits / len(ranks) if ranks else None
        rows.append(row)
    return rows


def describe(values: Sequence[float]) -> dict[str, float | None]:
    """Mean, median and standard deviation (Table 2's rows)."""
    data = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if data.size == 0:
        return {"n": 0, "mean": None, "median": None, "std": None}
    return {
        "n": int(data.size),
        "mean": float(data.mean()),
        "median": float(np.median(data)),
        "std": float(data.std()),
    }


def threshold_table(
    top_scores: Sequence[Sequence[float]], thresholds: Sequence[tuple[str, float]], k: int = 10
) -> list[dict]:
    """Table 3: per threshold, how many outputs have their most similar training recording at
    or above it (k = 1), and how many of the top-k training recordings of all outputs are."""
    outputs = [list(scores)[:k] for scores in top_scores]
    n = len(outputs)
    total = sum(len(s) for s in outputs)
    rows = []
    for name, value in thresholds:
        first = sum(1 for s in outputs if s and s[0] >= value)
        anywhere = sum(1 for s in outputs for v in s if v >= value)
        rows.append(
            {
                "threshold": name,
                "value": float(value),
                "top1_count": first,
                "top1_share": first / n if n else None,
                f"top{k}_count": anywhere,
                f"top{k}_share": anywhere / total if total else None,
                "outputs": n,
                f"top{k}_clips": total,
            }
        )
    return rows
