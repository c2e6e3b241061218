"""Throughput of the TDA stages on the current device (`measure_stages`), for sizing jobs.

Returns seconds and items per second of: the Fisher, one loss pass over the manifest (what a
query pays once theta0's losses are cached), the same pass through the cache, one unlearning
(the query's gradient and update), the fast index, and one fast-path query.
"""

from __future__ import annotations

import copy
import tempfile
import time
from typing import Any

from torch import nn

from attribution.tda.config import TDAConfig
from attribution.tda.fast import FastIndex
from attribution.tda.fisher import compute_fisher
from attribution.tda.score import BaseLossCache, score_chunk
from attribution.tda.target import AttributionTarget, Example, Manifest
from attribution.tda.unlearn import unlearn


def measure_stages(
    target: AttributionTarget,
    model: nn.Module,
    manifest: Manifest,
    query: Example,
    config: TDAConfig,
    *,
    fast: bool = True,
) -> dict[str, Any]:
    device = config.resolve_device()
    model = target.prepare(copy.deepcopy(model).to(device))
    n = len(manifest)
    out: dict[str, Any] = {"items": n, "device": str(device), "config": config.to_dict()}

    started = time.perf_counter()
    fisher = compute_fisher(target, model, manifest, config, model_version="benchmark")
    out["fisher_s"] = time.perf_counter() - started

    started = time.perf_counter()
    result = unlearn(target, model, query, fisher, config, n_items=n)
    out["unlearn_s"] = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as directory:
        cache = BaseLossCache(
            directory, target=target, model_version="benchmark", manifest=manifest,
            config=config, device=device,
        )  # fmt: skip
        started = time.perf_counter()
        score_chunk(target, model, result.model, manifest, config, 0, n, cache=cache)
        out["score_uncached_s"] = time.perf_counter() - started  # theta0 + theta_u passes
        started = time.perf_counter()
        score_chunk(target, model, result.model, manifest, config, 0, n, cache=cache)
        out["score_cached_s"] = time.perf_counter() - started  # theta_u pass only
    out["loss_items_per_s"] = n / out["score_cached_s"]
    out["fisher_items_per_s"] = n / out["fisher_s"]
    out["cache_speedup"] = out["score_uncached_s"] / out["score_cached_s"]
    out["exact_query_s"] = out["unlearn_s"] + out["score_cached_s"]

    if fast:
        started = time.perf_counter()
        index = FastIndex.build(target, model, manifest, fisher, config, model_version="benchmark")
        out["fast_index_s"] = time.perf_counter() - started
        index.scores(target, model, query, fisher, config)  # projection blocks generated once
        started = time.perf_counter()
        index.scores(target, model, query, fisher, config)
        out["fast_query_s"] = time.perf_counter() - started
        out["fast_speedup"] = out["exact_query_s"] / out["fast_query_s"]
    return out
