"""Standard errors of attribution scores, and scores of windows aggregated per recording.

Every score is a mean over random (t, noise) draws, so it carries draw noise. A run keeps
*replicates*: for each independent source of draws an array (items, R) whose row means are the
scores. Exact runs have one source, the per-draw loss differences (R = K draws); first-order
runs have two, the training gradient banks (R = banks) and the query's draw groups (R =
groups), since the score is a product of two independently drawn means. The standard error is

    SE_i^2 = sum over sources f of var(replicates_f[i], ddof=1) / R_f

(for the first-order product this is the delta method, the interaction term left out: it is
of the order of the product of the two relative errors).

A training recording is covered by several windows (platform_model.py); its score is the mean
over its windows (the average effect of its audio) or the max (its most influential window);
the replicates are aggregated the same way, so the recording's SE follows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attribution.tda.errors import NonFiniteError, TDAConfigError

AGGREGATES = ("mean", "max")


def standard_errors(replicates: Sequence[np.ndarray]) -> np.ndarray:
    """SE of each item's score from its replicates (see the module docstring)."""
    if not replicates:
        raise TDAConfigError("no replicates: the standard error cannot be computed")
    total = None
    for values in replicates:
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] < 2:
            raise TDAConfigError(
                f"a standard error needs at least 2 replicates per source, got shape {values.shape}"
            )
        part = values.var(axis=1, ddof=1) / values.shape[1]
        total = part if total is None else total + part
    se = np.sqrt(total)
    if not np.all(np.isfinite(se)):
        raise NonFiniteError("a standard error is not finite")
    return se


@dataclass
class RecordingScores:
    """Scores per training recording, aggregated over its windows."""

    ids: list[Any]  # distinct recording ids, manifest order
    windows: list[int]  # windows per recording
    mean: np.ndarray
    mean_se: np.ndarray
    max: np.ndarray
    max_se: np.ndarray
    max_window: list[int]  # manifest index of the window that gives `max`

    def score(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """(scores, standard errors) of the `kind` aggregate."""
        if kind not in AGGREGATES:
            raise TDAConfigError(f"aggregate must be one of {AGGREGATES}")
        return (self.mean, self.mean_se) if kind == "mean" else (self.max, self.max_se)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ids": list(self.ids),
            "windows": list(self.windows),
            "mean": [float(v) for v in self.mean],
            "mean_se": [float(v) for v in self.mean_se],
            "max": [float(v) for v in self.max],
            "max_se": [float(v) for v in self.max_se],
            "max_window": list(self.max_window),
        }


def by_recording(
    ids: Sequence[Any], scores: np.ndarray, replicates: Sequence[np.ndarray]
) -> RecordingScores:
    """Aggregate window scores (manifest order, `ids` the recording of each window)."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(ids) != scores.size:
        raise TDAConfigError("one id per score is needed")
    groups: dict[Any, list[int]] = {}
    for index, rid in enumerate(ids):
        groups.setdefault(rid, []).append(index)
    reps = [np.asarray(r, dtype=np.float64) for r in replicates]
    mean, mean_se, top, top_se, top_window = [], [], [], [], []
    window_se = standard_errors(reps)
    for rows in groups.values():
        mean.append(float(scores[rows].mean()))
        mean_se.append(
            float(standard_errors([r[rows].mean(axis=0, keepdims=True) for r in reps])[0])
        )
        best = rows[int(np.argmax(scores[rows]))]
        top.append(float(scores[best]))
        top_se.append(float(window_se[best]))
        top_window.append(best)
    return RecordingScores(
        ids=list(groups),
        windows=[len(rows) for rows in groups.values()],
        mean=np.array(mean),
        mean_se=np.array(mean_se),
        max=np.array(top),
        max_se=np.array(top_se),
        max_window=top_window,
    )
