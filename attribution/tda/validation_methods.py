"""The scoring methods `validation.validate` compares (plain torch, no Django).

Each scorer takes the `ValidationContext` and returns {method name: (queries, items) scores}
in item order (keys starting with "_" carry extra figures for the report):

- `unlearning_scorer`: the product's first-order scores (window mean and max, and the
  normalised variant tau_i / ||F^-1/2 g_i||), exact unlearning at the product learning rate and
  at a non-linear one (with the own-loss rise and the exact vs first-order regime check);
- `similarity_scorer`: conditioning similarity (the query's reference embeddings against each
  item's window embeddings), output similarity (the rendered output's embedding, when an
  embedder is given), DiT-activation similarity (seed 000 3.3), and random scores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from attribution.tda.baselines import ProbeConfig, baseline_scores, max_window_similarity
from attribution.tda.config import TDAConfig, fingerprint
from attribution.tda.fisher import fisher_file_name
from attribution.tda.platform_model import platform_manifest
from attribution.tda.run import AttributionRun
from attribution.tda.target import model_digest
from attribution.tda.validation import Scorer, ValidationContext

VALIDATION_TDA = {
    "method": "first_order", "loss_mask": True, "learning_rate": 1e-7, "loss_timesteps": 16,
    "loss_draw_banks": 4, "fisher_timesteps": 4, "unlearn_timesteps": 64, "query_groups": 8,
    "projection": "countsketch", "projection_dim": 4096, "regime_probe_items": 8,
    "items_per_batch": 4, "device": "cpu",
}  # fmt: skip


def _per_recording(ctx: ValidationContext, ids: list[Any], values: np.ndarray) -> np.ndarray:
    """Window values (W,) -> mean per item (N,) in item order."""
    order = {int(item.recording_id): n for n, item in enumerate(ctx.items)}
    sums, counts = np.zeros(len(ctx.items)), np.zeros(len(ctx.items))
    for rid, value in zip(ids, values, strict=True):
        sums[order[int(rid)]] += value
        counts[order[int(rid)]] += 1
    return sums / counts


def unlearning_scorer(
    overrides: Mapping[str, Any] | None = None,
    *,
    nonlinear_learning_rate: float = 1e-3,
    trak_dampings: tuple[float, ...] = (0.01, 0.1, 1.0),
) -> Scorer:
    settings = dict(VALIDATION_TDA) | dict(overrides or {})

    def score(ctx: ValidationContext) -> dict[str, np.ndarray]:
        config = TDAConfig.from_dict(settings)
        model = ctx.generator.model
        version = model_digest(model)
        manifest = platform_manifest(ctx.items, ctx.target.config, coverage="whole")
        shared = ctx.directory / "tda" / version[:16]
        fisher = shared / fisher_file_name(version, manifest.digest, config)
        out: dict[str, list[np.ndarray]] = {}
        regimes: dict[str, list[dict[str, Any]]] = {}

        def run(name: str, cfg: TDAConfig, q: int) -> AttributionRun:
            return AttributionRun(
                ctx.directory / "runs" / version[:12] / f"{name}-{fingerprint(cfg.to_dict())[:12]}"
                / str(q), target=ctx.target, model=model,
                manifest=manifest, query=ctx.queries[q], config=cfg, model_version=version,
                query_key=ctx.query_keys[q], fisher_path=fisher, cache_dir=shared / "losses",
            )  # fmt: skip

        def add(name: str, values: np.ndarray) -> None:
            out.setdefault(name, []).append(values)

        def add_recordings(name: str, result) -> None:
            """Its window mean and max per recording (the manifest lists the recordings in
            item order, so these rows are in item order too)."""
            recordings = result.recordings()
            add(f"{name}_mean", recordings.mean)
            add(f"{name}_max", recordings.max)

        kernels = {f"trak_{d:g}": replace(config, kernel="trak", kernel_damping=d)
                   for d in trak_dampings}  # fmt: skip
        exact = replace(config, method="exact", loss_timesteps=8)
        nonlinear = replace(exact, learning_rate=nonlinear_learning_rate)
        for q in range(len(ctx.queries)):
            first = run("first_order", config, q)
            result = first.run()
            add_recordings("first_order", result)
            norms = first.index().features.double().mean(dim=1).norm(dim=1).numpy()
            add("first_order_normalised", _per_recording(ctx, result.ids, result.scores / norms))
            regimes.setdefault("first_order", []).append(result.regime)
            for name, cfg in kernels.items():
                add_recordings(name, run(name, cfg, q).run())
            for name, cfg in (("exact_product_lr", exact), ("exact_nonlinear_lr", nonlinear)):
                exact_result = run(name, cfg, q).run()
                add(name, _per_recording(ctx, exact_result.ids, exact_result.scores))
                regimes.setdefault(name, []).append(exact_result.regime)
        scores = {name: np.stack(rows) for name, rows in out.items()}
        scores["_regime"] = {
            name: {
                "own_loss_rise": [r["own_loss_rise"] for r in rows],
                "pearson_exact_first_order": [r["pearson"] for r in rows],
            }
            for name, rows in regimes.items()
        }
        scores["_settings"] = {"first_order": settings, "nonlinear_lr": nonlinear_learning_rate}
        return scores

    return score


def similarity_scorer(
    embed_output: Callable[[np.ndarray, int], np.ndarray] | None = None, *, seed: int = 0
) -> Scorer:
    """`embed_output(audio, sample_rate)` -> unit vector in the items' window space."""

    def score(ctx: ValidationContext) -> dict[str, np.ndarray]:
        windows = [np.stack([w for _, w in item.windows]) for item in ctx.items]

        def reference_similarity(spec) -> np.ndarray:
            rows = [max_window_similarity(r.embedding[None], windows) for r in spec.references]
            return np.mean(rows, axis=0)

        conditioning = np.stack([reference_similarity(spec) for spec in ctx.specs])
        scores: dict[str, Any] = {"conditioning_similarity": conditioning}
        if embed_output is not None:
            rows = []
            for spec, logmel in zip(ctx.specs, ctx.logmels, strict=True):
                audio = ctx.generator.render(logmel, spec)
                vector = embed_output(audio, ctx.generator.sample_rate)
                rows.append(max_window_similarity(np.asarray(vector)[None], windows))
            scores["output_similarity"] = np.stack(rows)
        manifest = platform_manifest(ctx.items, ctx.target.config, coverage="whole")
        model = ctx.target.prepare(ctx.generator.model)
        with torch.no_grad():
            activation = baseline_scores(
                ctx.target, model, ctx.queries, list(manifest.items), ProbeConfig()
            )["activation"]
        scores["dit_activation_similarity"] = np.stack(
            [_per_recording(ctx, list(manifest.ids), row) for row in activation]
        )
        rng = np.random.default_rng(seed)
        scores["random"] = rng.standard_normal((len(ctx.queries), len(ctx.items)))
        return scores

    return score
