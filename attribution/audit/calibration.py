"""Similarity thresholds of one embedding space (seed 003 section 4.1).

A random sample of catalogue clips is ranked against every other clip; a Gaussian is fitted to
the pooled similarities of each sample's top neighbours. Its mean, +1 sigma and +2 sigma are
the paper's bins 3, 2 and 1 (listeners rated bin 1 as more similar than any other bin 97% of
the time with CLAP). Bin 4, "random", is the mean similarity of random clip pairs.

`fit` says where the Gaussian is fitted. "raw" is the paper's procedure: on the cosine
similarities themselves. They are bounded by 1 and skewed towards it, so on an encoder whose
near neighbours are close (ours: top-neighbour sigma ~0.09) mean + 2 sigma lands above 1.0 and
not even an exact copy could reach it. "fisher_z" (the default) fits the Gaussian to
atanh(similarity), the usual variance-stabilising transform of correlations, and maps the
thresholds back with tanh: the same mean/sigma construction, always below 1. Both fits are
stored, so the report shows the paper's numbers beside the ones in use.

The paper ranked the top 10,000 of 5 million clips (the top 0.2%); a catalogue of a few
thousand clips keeps the same fraction (`top_fraction`) with a floor (`min_top`). Neighbours
from the sampled clip's own recording are left out: the thresholds describe how close *other*
recordings get, which is what a flag compares against.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from attribution.audit.clips import AuditError

# Names of the stored thresholds, from least to most similar.
THRESHOLD_NAMES = ("random", "mean", "mean+1sigma", "mean+2sigma")
FITS = ("fisher_z", "raw")
Z_CLIP = 1 - 1e-6  # atanh(1) is infinite: an exact duplicate clip counts as 0.999999
BIN_HALF_WIDTH = 0.02  # the listening test's bins were centre +- 0.02


@dataclass(frozen=True)
class CalibrationConfig:
    sample_clips: int = 1000  # seed 003: 1,000 random clips
    top_fraction: float = 0.002  # 10,000 of 5,000,000
    min_top: int = 10
    random_pairs_side: int = 1000  # two random sets of 1,000 clips, all pairs
    seed: int = 0
    histogram_bins: int = 50
    fit: str = "fisher_z"  # or "raw" (the paper's Gaussian on the similarities themselves)

    def __post_init__(self) -> None:
        if self.fit not in FITS:
            raise AuditError(f"fit must be one of {', '.join(FITS)}, not {self.fit!r}")
        if self.sample_clips < 1 or self.min_top < 1 or self.random_pairs_side < 1:
            raise AuditError("sample_clips, min_top and random_pairs_side must be at least 1")
        if not 0 < self.top_fraction <= 1:
            raise AuditError("top_fraction must be in (0, 1]")

    def top_n(self, candidates: int) -> int:
        return max(1, min(candidates, max(self.min_top, round(self.top_fraction * candidates))))


@dataclass(frozen=True)
class Calibration:
    """The fitted distribution and the thresholds derived from it."""

    mean: float
    std: float
    random_mean: float
    random_std: float
    clip_count: int
    recording_count: int
    sampled_clips: int
    top_n: int
    config: dict = field(default_factory=dict)
    histogram: dict = field(default_factory=dict)  # top-neighbour and random-pair histograms
    fit: str = "fisher_z"
    z_mean: float = 0.0  # the Gaussian fitted to atanh(similarity)
    z_std: float = 0.0

    @property
    def raw_thresholds(self) -> dict[str, float]:
        """The paper's construction on the similarities themselves."""
        return {
            "random": self.random_mean,
            "mean": self.mean,
            "mean+1sigma": self.mean + self.std,
            "mean+2sigma": self.mean + 2 * self.std,
        }

    @property
    def z_thresholds(self) -> dict[str, float]:
        return {
            "random": self.random_mean,
            "mean": float(np.tanh(self.z_mean)),
            "mean+1sigma": float(np.tanh(self.z_mean + self.z_std)),
            "mean+2sigma": float(np.tanh(self.z_mean + 2 * self.z_std)),
        }

    @property
    def thresholds(self) -> dict[str, float]:
        """The thresholds in use (those of `fit`)."""
        return self.raw_thresholds if self.fit == "raw" else self.z_thresholds

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "thresholds": self.thresholds,
            "raw_thresholds": self.raw_thresholds,
            "z_thresholds": self.z_thresholds,
        }


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or not np.all(np.isfinite(vectors)):
        raise AuditError("clip vectors must be a finite (n, d) matrix")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise AuditError("a clip vector is all zeros (a missing embedding?)")
    return vectors / norms


def calibrate(
    vectors: np.ndarray, recording_ids: np.ndarray, config: CalibrationConfig | None = None
) -> Calibration:
    """Thresholds for the clips `vectors` (one row per clip) of `recording_ids`."""
    config = config or CalibrationConfig()
    recording_ids = np.asarray(recording_ids)
    unit = _unit(vectors)
    if len(unit) != len(recording_ids):
        raise AuditError("one recording id per clip vector is needed")
    recordings = np.unique(recording_ids)
    if len(recordings) < 2:
        raise AuditError(f"calibration needs clips of at least 2 recordings, got {len(recordings)}")
    rng = np.random.default_rng(config.seed)
    sample = rng.choice(len(unit), size=min(config.sample_clips, len(unit)), replace=False)
    top_scores = []
    top_n = 0
    for start in range(0, len(sample), 256):  # bounded memory: 256 x n similarities at a time
        rows = sample[start : start + 256]
        sims = unit[rows] @ unit.T
        sims[recording_ids[rows][:, None] == recording_ids[None, :]] = -np.inf
        for row in sims:
            candidates = int(np.isfinite(row).sum())
            n = config.top_n(candidates)
            top_n = max(top_n, n)
            top_scores.append(np.partition(row, -n)[-n:])
    pooled = np.concatenate(top_scores).astype(np.float64)

    side = min(config.random_pairs_side, len(unit))
    first = rng.choice(len(unit), size=side, replace=False)
    second = rng.choice(len(unit), size=side, replace=False)
    pairs = (unit[first] @ unit[second].T).astype(np.float64)
    different = recording_ids[first][:, None] != recording_ids[second][None, :]
    random_pairs = pairs[different]
    if random_pairs.size == 0:
        raise AuditError("no pair of clips from different recordings to measure")

    z = np.arctanh(np.clip(pooled, -Z_CLIP, Z_CLIP))
    edges = np.linspace(-1.0, 1.0, config.histogram_bins + 1)
    return Calibration(
        fit=config.fit,
        z_mean=float(z.mean()),
        z_std=float(z.std()),
        mean=float(pooled.mean()),
        std=float(pooled.std()),
        random_mean=float(random_pairs.mean()),
        random_std=float(random_pairs.std()),
        clip_count=len(unit),
        recording_count=len(recordings),
        sampled_clips=len(sample),
        top_n=top_n,
        config=asdict(config),
        histogram={
            "edges": edges.round(4).tolist(),
            "top": np.histogram(pooled, bins=edges)[0].tolist(),
            "random": np.histogram(random_pairs, bins=edges)[0].tolist(),
        },
    )


def threshold_value(thresholds: dict[str, float], name: str) -> float:
    """The threshold called `name` (one of THRESHOLD_NAMES, or a number such as "0.9")."""
    if name in thresholds:
        return float(thresholds[name])
    try:
        value = float(name)
    except (TypeError, ValueError):
        raise AuditError(
            f"unknown threshold {name!r}: use one of {', '.join(THRESHOLD_NAMES)} or a number"
        ) from None
    if not -1.0 <= value <= 1.0:
        raise AuditError(f"a cosine-similarity threshold must be in [-1, 1], not {value}")
    return value
