"""What training-time attribution costs, as a function of the number of training windows.

Every stage is linear in the windows except the first-order query's gradient (constant), so
`measure_per_window` times each stage on an evenly spread sample of windows, and
`first_order_query_seconds` times the query itself against an index of any size (its product
with the index is timed on real-sized random features: its cost does not depend on values).
`cost_table` combines them into seconds per number of windows.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from attribution.tda.config import TDAConfig
from attribution.tda.fast import FastIndex
from attribution.tda.fisher import compute_fisher
from attribution.tda.regime import regime_check
from attribution.tda.score import item_losses
from attribution.tda.target import AttributionTarget, Example, Manifest, spread_indices
from attribution.tda.unlearn import unlearn


@dataclass
class StageCosts:
    sample: int  # windows timed
    fisher_per_window: float  # seconds, with config.fisher_timesteps draws
    index_per_window: float  # seconds, loss_draw_banks x loss_timesteps draws
    loss_pass_per_window: float  # seconds: one exact loss pass (loss_timesteps draws)
    query_gradient: float  # the first-order query: its gradient groups and projection
    unlearn_update: float  # theta_u from that gradient
    regime_check: float  # own-loss rise and the probe windows
    device: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _sample_manifest(manifest: Manifest, count: int) -> Manifest:
    chosen = spread_indices(len(manifest), count)
    return Manifest(
        items=[manifest.items[i] for i in chosen],
        ids=tuple(manifest.ids[i] for i in chosen),
        digest=f"{manifest.digest}-sample-{count}",
    )


def measure_per_window(
    target: AttributionTarget,
    model: nn.Module,
    manifest: Manifest,
    query: Example,
    config: TDAConfig,
    *,
    sample: int = 16,
) -> tuple[StageCosts, FastIndex]:
    """Seconds per window of each stage, on `sample` windows spread over the manifest."""
    device = config.resolve_device()
    model = target.prepare(copy.deepcopy(model).to(device))
    part = _sample_manifest(manifest, sample)
    config = replace(config, fisher_items=0)
    started = time.perf_counter()
    fisher = compute_fisher(target, model, part, config, model_version="benchmark")
    fisher_s = time.perf_counter() - started
    started = time.perf_counter()
    index = FastIndex.build(target, model, part, fisher, config, model_version="benchmark")
    index_s = time.perf_counter() - started
    started = time.perf_counter()
    item_losses(target, model, part, replace(config, items_per_batch=1), 0, len(part))
    loss_s = time.perf_counter() - started
    index.first_order(target, model, query, fisher, config, query_key="warm-up")
    started = time.perf_counter()
    scores = index.first_order(target, model, query, fisher, config, query_key="benchmark")
    gradient_s = time.perf_counter() - started
    started = time.perf_counter()
    result = unlearn(target, model, query, fisher, config, n_items=len(part),
                     query_key="benchmark", gradient=scores.gradient)  # fmt: skip
    unlearn_s = time.perf_counter() - started
    started = time.perf_counter()
    regime_check(target, model, result.model, query, part, config, query_key="benchmark")
    regime_s = time.perf_counter() - started
    costs = StageCosts(
        sample=len(part), fisher_per_window=fisher_s / len(part),
        index_per_window=index_s / len(part), loss_pass_per_window=loss_s / len(part),
        query_gradient=gradient_s, unlearn_update=unlearn_s, regime_check=regime_s,
        device=str(device),
    )  # fmt: skip
    return costs, index


def product_seconds(index: FastIndex, windows: int, repeats: int = 3) -> float:
    """Best time of the first-order scores' product with an index of `windows` windows (random
    features of the index's shape: banks x dimensions), including the replicates."""
    banks, dim = index.features.shape[1], index.features.shape[2]
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(windows, banks, dim, generator=generator)
    q = torch.randn(8, dim, generator=generator).double()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        f = features.double()
        f_mean, q_mean = f.mean(dim=1), q.mean(dim=0)
        (f_mean @ q_mean).numpy(), (f @ q_mean).numpy(), (f_mean @ q.T).numpy()
        best = min(best, time.perf_counter() - started)
    return best


def cost_table(
    costs: StageCosts, index: FastIndex, windows: list[int], config: TDAConfig
) -> list[dict[str, Any]]:
    """Seconds per stage for each number of windows (Fisher over config.fisher_items)."""
    rows = []
    for n in windows:
        fisher_windows = n if not config.fisher_items else min(n, config.fisher_items)
        product = product_seconds(index, n)
        first_order = costs.query_gradient + costs.unlearn_update + costs.regime_check + product
        exact = costs.unlearn_update + costs.query_gradient + n * costs.loss_pass_per_window
        rows.append({
            "windows": n,
            "fisher_s": fisher_windows * costs.fisher_per_window,
            "index_s": n * costs.index_per_window,
            "index_mib": n * index.features.shape[1] * index.features.shape[2] * 4 / 2**20,
            "first_order_query_s": first_order,
            "product_s": product,
            "exact_query_s": exact,  # theta0's losses cached: one theta_u pass
            "speedup": exact / first_order,
        })  # fmt: skip
    return rows
