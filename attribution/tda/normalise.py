"""Scores -> shares (seed 000 Fig. 1 shows min-max and softmax normalisations).

`softmax_shares` and `topk_shares` return non-negative float64 shares summing to 1 (what a
royalty pool is split by, after the money code turns them into integer cents with largest
remainder); `minmax` is a [0, 1] view for display, not shares.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attribution.tda.errors import NormalisationError


def _scores(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise NormalisationError("no scores")
    if not np.all(np.isfinite(values)):
        raise NormalisationError("scores must be finite")
    return values


def softmax_shares(
    scores: Sequence[float] | np.ndarray, temperature: float | str = 1.0
) -> np.ndarray:
    """exp(s_i / T) / sum_j exp(s_j / T). `temperature="std"` uses the scores' standard
    deviation (scale-free: unlearning scores are tiny loss differences); all-equal scores give
    equal shares."""
    values = _scores(scores)
    if temperature == "std":
        temperature = float(values.std())
        if temperature == 0.0:
            return np.full(values.size, 1.0 / values.size)
    if not isinstance(temperature, int | float) or not (0 < temperature < np.inf):
        raise NormalisationError("temperature must be a finite number > 0 or 'std'")
    z = (values - values.max()) / float(temperature)
    weights = np.exp(z)
    return weights / weights.sum()


def topk_shares(scores: Sequence[float] | np.ndarray, k: int) -> np.ndarray:
    """Shares proportional to the k highest positive scores (ties broken by index), zero for
    every other item; sums to 1. Raises NormalisationError when no score is positive."""
    values = _scores(scores)
    if not isinstance(k, int | np.integer) or k < 1:
        raise NormalisationError("k must be an integer >= 1")
    order = np.argsort(-values, kind="stable")[:k]
    chosen = order[values[order] > 0]
    if chosen.size == 0:
        raise NormalisationError("no positive score: the top-k split is undefined")
    shares = np.zeros(values.size)
    shares[chosen] = values[chosen] / values[chosen].sum()
    return shares


def minmax(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """(s - min) / (max - min) in [0, 1]; all-equal scores give zeros."""
    values = _scores(scores)
    spread = values.max() - values.min()
    if spread == 0:
        return np.zeros(values.size)
    return (values - values.min()) / spread


def clears_noise(
    scores: Sequence[float] | np.ndarray,
    standard_errors: Sequence[float] | np.ndarray,
    min_z: float,
) -> np.ndarray:
    """Which scores are paid at all: score > 0 and score >= min_z * SE (bool per item)."""
    values = _scores(scores)
    errors = np.asarray(standard_errors, dtype=np.float64).reshape(-1)
    if errors.shape != values.shape or not np.all(np.isfinite(errors)) or np.any(errors < 0):
        raise NormalisationError("one finite, non-negative standard error per score is needed")
    if not (isinstance(min_z, int | float) and np.isfinite(min_z) and min_z >= 0):
        raise NormalisationError("min_z must be a finite number >= 0")
    return (values > 0) & (values >= min_z * errors)


def eligible_topk_shares(
    scores: Sequence[float] | np.ndarray,
    standard_errors: Sequence[float] | np.ndarray,
    k: int,
    min_z: float,
) -> np.ndarray:
    """Top-k shares over the items whose score clears `min_z` standard errors (score > 0 and
    score >= min_z * SE): an item whose score is within its draw noise of zero is not paid.
    Raises NormalisationError when no item clears (the caller's fallback decides)."""
    values = _scores(scores)
    cleared = np.where(clears_noise(values, standard_errors, min_z), values, 0.0)
    if not np.any(cleared > 0):
        raise NormalisationError(
            f"no score clears {min_z:g} standard errors: the attribution is within its noise"
        )
    return topk_shares(cleared, k)
