"""Checks of an attribution method (seed 000 section 3.2) and distribution distances.

- `target_rank`: R(z_tar), the rank of the unlearned item among all scores (1 = highest);
  `self_influence` unlearns training items themselves and reports their ranks.
- `clap_top_bottom`: mean cosine similarity of the target to the top-k / bottom-k items
  (CLAP_topk / CLAP_botk of seed 000 Table 1).
- `spearman`: rank correlation (average ranks for ties), e.g. fast path vs exact scores.
- `frechet_distance`: FD between Gaussians fitted to two embedding sets (FD_open13-style).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from attribution.tda.config import TDAConfig
from attribution.tda.errors import TDAConfigError
from attribution.tda.fisher import FisherInfo
from attribution.tda.score import BaseLossCache, score_chunk
from attribution.tda.target import AttributionTarget, Manifest
from attribution.tda.unlearn import unlearn
from generation.quality import frechet_distance  # noqa: F401  (re-exported)


def target_rank(scores: Sequence[float] | np.ndarray, index: int) -> int:
    """R(z_tar): 1 + the number of *other* items scoring at least as high as item `index`
    (ties count against the target, so all-equal scores never pass as rank 1)."""
    values = np.asarray(scores, dtype=np.float64)
    if not 0 <= index < values.size:
        raise TDAConfigError(f"index {index} outside {values.size} scores")
    if not np.all(np.isfinite(values)):
        raise TDAConfigError("scores must be finite")
    others = np.delete(values, index)
    return 1 + int((others >= values[index]).sum())


def rankdata(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.arange(1, values.size + 1)
    unique, inverse = np.unique(values, return_inverse=True)
    if unique.size < values.size:  # average the ranks of tied values
        sums = np.bincount(inverse, weights=ranks)
        counts = np.bincount(inverse)
        ranks = (sums / counts)[inverse]
    return ranks


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation; NaN when either side is constant."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise TDAConfigError("spearman needs two 1-d arrays of the same length >= 2")
    ra, rb = rankdata(a) - (a.size + 1) / 2, rankdata(b) - (b.size + 1) / 2
    denominator = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")


def clap_top_bottom(
    scores: Sequence[float] | np.ndarray,
    embeddings: np.ndarray,  # (N, C) one embedding per training item
    target_embedding: np.ndarray,  # (C,)
    k: int,
    exclude: int | None = None,  # e.g. the target itself in the self-influence setup
) -> tuple[float, float]:
    """(mean cosine of the target to the k top-scored items, same for the k lowest)."""
    values = np.asarray(scores, dtype=np.float64)
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.shape[0] != values.size:
        raise TDAConfigError("one embedding per score")
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    tgt = np.asarray(target_embedding, dtype=np.float64)
    cosine = emb @ (tgt / np.linalg.norm(tgt))
    order = np.argsort(-values, kind="stable")
    if exclude is not None:
        order = order[order != exclude]
    k = min(k, order.size)
    return float(cosine[order[:k]].mean()), float(cosine[order[-k:]].mean())


@dataclass
class SelfInfluenceReport:
    indices: list[int]
    ranks: list[int]
    scores: list[np.ndarray] = field(repr=False)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_rank(self) -> float:
        return float(np.mean(self.ranks))


def self_influence(
    target: AttributionTarget,
    model: nn.Module,
    manifest: Manifest,
    fisher: FisherInfo,
    config: TDAConfig,
    indices: Sequence[int],
    *,
    cache: BaseLossCache | None = None,
) -> SelfInfluenceReport:
    """Unlearn each training item `indices[j]` (as its own query, draws keyed by its index)
    and rank it among the scores of the whole manifest: R(z_tar) should be 1.

    `model` is theta0, prepared and on its device."""
    ranks, all_scores = [], []
    for index in indices:
        query = target.example(manifest.items[index])
        result = unlearn(
            target, model, query, fisher, config, n_items=len(manifest),
            query_key=f"train:{index}",
        )  # fmt: skip
        chunk = score_chunk(
            target, model, result.model, manifest, config, 0, len(manifest), cache=cache
        )
        ranks.append(target_rank(chunk.scores, index))
        all_scores.append(chunk.scores)
    return SelfInfluenceReport(list(indices), ranks, all_scores, config.to_dict())
