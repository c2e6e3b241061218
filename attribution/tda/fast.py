"""Fast path (beyond seed 000): a TRAK-style first-order estimate of the unlearning scores.

A first-order Taylor expansion of Eq. 2 around theta0, with the Eq. 6 update
delta = lr / N * F^-1 g_q (g_q = the query's unlearning gradient), gives

    tau_i ~= g_i . delta = lr / N * (F^-1/2 g_i) . (F^-1/2 g_q)          (times `steps`)

with g_i the gradient of item i's measured loss (same draws and mask as the exact scores).
The Fisher-preconditioned training gradients are stored once per model version, randomly
projected to `projection_dim` dimensions (dense Rademacher or Gaussian, or the sparse
Rademacher "countsketch" for models with millions of parameters; generated block by block from
a fixed seed, so E[Px . Py] = x . y; Johnson-Lindenstrauss). A query then costs its one
gradient, one projection and N dot products instead of a pass over the manifest. `compare` and
`time_per_query` measure agreement and speed-up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from attribution.tda.config import CODE_VERSION, TDAConfig
from attribution.tda.errors import NonFiniteGradientError, StageMismatchError
from attribution.tda.evaluate import spearman
from attribution.tda.fisher import FisherInfo, atomic_save
from attribution.tda.target import (
    AttributionTarget,
    Example,
    Manifest,
    Progress,
    batch_draws,
    draw_seed,
    example_digest,
    example_to,
    group_names,
    per_sample_grads,
)
from attribution.tda.unlearn import unlearning_gradient

FAST_FORMAT = 1
BLOCK_COLUMNS = 1 << 15  # parameter entries per generated projection block


class Projector:
    """x (S, p) -> (S, d) for the concatenation of the named parameters: a fixed random
    projection whose blocks are generated from (seed, name, block) on the CPU, so every process
    builds the same one.

    - "rademacher" / "gaussian": dense P with entries +-1/sqrt(d) or N(0, 1/d); kept in memory
      when p * d * 4 bytes fit `cache_bytes`, else regenerated for every call (slow for
      millions of parameters);
    - "countsketch": the sparse Rademacher projection (each parameter entry goes to one random
      coordinate with a random sign; E[Px . Py] = x . y, with a variance of the same order as the
      dense one), O(p) per vector and 12 bytes per parameter of memory;
    - "auto": "rademacher" when its dense matrix fits `cache_bytes`, else "countsketch".
    """

    def __init__(
        self,
        shapes: Mapping[str, Sequence[int]],
        *,
        dim: int,
        kind: str,
        seed: int,
        cache_bytes: int = 512 << 20,
    ) -> None:
        self.names = list(shapes)
        self.sizes = {n: int(np.prod(shapes[n])) for n in self.names}
        self.dim, self.seed = dim, seed
        total = sum(self.sizes.values())
        if kind == "auto":
            kind = "rademacher" if total * dim * 4 <= cache_bytes else "countsketch"
        self.kind = kind
        per_entry = 12 if kind == "countsketch" else dim * 4
        self._cache: dict[tuple[str, int], Any] | None = (
            {} if total * per_entry <= cache_bytes else None
        )

    def _block(self, name: str, index: int, columns: int, device: torch.device):
        key = (name, index)
        if self._cache is not None and key in self._cache:
            return self._cache[key]
        generator = torch.Generator().manual_seed(draw_seed(self.seed, f"proj:{name}", index))
        if self.kind == "countsketch":
            buckets = torch.randint(0, self.dim, (columns,), generator=generator)
            signs = torch.randint(0, 2, (columns,), generator=generator).float() * 2 - 1
            block = (buckets.to(device), signs.to(device))
        elif self.kind == "rademacher":
            block = torch.randint(0, 2, (columns, self.dim), generator=generator).float() * 2 - 1
            block = (block / np.sqrt(self.dim)).to(device)  # (c, d)
        else:
            block = torch.randn((columns, self.dim), generator=generator) / np.sqrt(self.dim)
            block = block.to(device)
        if self._cache is not None:
            self._cache[key] = block
        return block

    def project(self, vectors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """{name: (S, *shape)} -> (S, d) float32."""
        first = vectors[self.names[0]]
        out = torch.zeros(first.shape[0], self.dim, device=first.device)
        for name in self.names:
            flat = vectors[name].reshape(first.shape[0], -1).float()  # (S, p_name)
            for index, begin in enumerate(range(0, self.sizes[name], BLOCK_COLUMNS)):
                cols = min(BLOCK_COLUMNS, self.sizes[name] - begin)
                part = flat[:, begin : begin + cols]
                block = self._block(name, index, cols, flat.device)
                if self.kind == "countsketch":
                    buckets, signs = block
                    out.index_add_(1, buckets, part * signs)
                else:
                    out += part @ block
        return out


def _inverse_sqrt(fisher: FisherInfo, names: Sequence[str], config: TDAConfig, device):
    floored, _ = fisher.floored(names, config)
    return {n: floored[n].rsqrt().to(device) for n in names}  # float64


@dataclass
class FastIndex:
    features: torch.Tensor  # (N, d) float32: P F^-1/2 g_i
    ids: list[Any]
    model_version: str
    manifest_digest: str
    settings: dict[str, Any]  # TDAConfig.fast_settings()
    names: list[str]
    code_version: str = CODE_VERSION
    seconds: float = 0.0
    _projector: Projector | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls,
        target: AttributionTarget,
        model: nn.Module,
        manifest: Manifest,
        fisher: FisherInfo,
        config: TDAConfig,
        *,
        model_version: str,
        progress: Progress | None = None,
    ) -> FastIndex:
        """Projected, preconditioned gradients of every item's measured loss (model: theta0,
        prepared, on its device)."""
        started = time.monotonic()
        names = group_names(target, model, config.layer_group)
        fisher.check(model_version=model_version, manifest_digest=manifest.digest,
                     config=config, names=names)  # fmt: skip
        device = next(model.parameters()).device
        scale = _inverse_sqrt(fisher, names, config, device)
        params = dict(model.named_parameters())
        projector = _projector(params, names, config)
        per_call = max(1, config.grad_batch // config.loss_timesteps)
        rows = []
        total = len(manifest)
        for start in range(0, total, per_call):
            indices = list(range(start, min(total, start + per_call)))
            batch = target.collate([target.example(manifest.items[i]) for i in indices])
            t, noise = batch_draws(
                config.seed, "loss", indices, config.loss_timesteps, batch.x0.shape[1:]
            )
            batch = example_to(target, batch, device)
            grads = per_sample_grads(
                target, model, names, batch, t.to(device), noise.to(device), config.loss_mask
            )
            rows.append(_features(grads, scale, projector, names, config))
            if progress is not None:
                progress("fast_index", indices[-1] + 1, total)
        return cls(
            features=torch.cat(rows).cpu(),
            ids=list(manifest.ids),
            model_version=model_version,
            manifest_digest=manifest.digest,
            settings=config.fast_settings(),
            names=names,
            seconds=time.monotonic() - started,
            _projector=projector,
        )

    def scores(
        self,
        target: AttributionTarget,
        model: nn.Module,
        query: Example,
        fisher: FisherInfo,
        config: TDAConfig,
        *,
        query_key: str | None = None,
    ) -> np.ndarray:
        """First-order tau_i for every item: steps * lr / N * features_i . (P F^-1/2 g_q)."""
        if config.fast_settings() != self.settings:
            raise StageMismatchError("fast index was built with other settings")
        device = next(model.parameters()).device
        query_key = query_key or example_digest(target, query)
        draws = config.fast_query_timesteps or config.unlearn_timesteps
        grads = unlearning_gradient(
            target, model, query, replace(config, unlearn_timesteps=draws), names=self.names,
            query_key=query_key,
        )  # fmt: skip
        scale = _inverse_sqrt(fisher, self.names, config, device)
        if self._projector is None:
            self._projector = _projector(dict(model.named_parameters()), self.names, config)
        q = _features({n: g[None] for n, g in grads.items()}, scale, self._projector,
                      self.names, config)[0]  # fmt: skip
        factor = config.steps * config.learning_rate / len(self.ids)
        values = (self.features.to(device) @ q).double().cpu().numpy() * factor
        return values

    # -- files ---------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save(
            {
                "format": FAST_FORMAT, "features": self.features, "ids": self.ids,
                "model_version": self.model_version, "manifest_digest": self.manifest_digest,
                "settings": self.settings, "names": self.names,
                "code_version": self.code_version, "seconds": self.seconds,
            },
            path,
        )  # fmt: skip
        return path

    @classmethod
    def load(
        cls, path: str | Path, *, model_version: str, manifest_digest: str, config: TDAConfig
    ) -> FastIndex:
        data = torch.load(Path(path), map_location="cpu", weights_only=True)
        if not isinstance(data, dict) or data.pop("format", None) != FAST_FORMAT:
            raise StageMismatchError(f"{path} is not a fast index of format {FAST_FORMAT}")
        index = cls(**data)
        wanted = (model_version, manifest_digest, config.fast_settings(), CODE_VERSION)
        found = (index.model_version, index.manifest_digest, index.settings, index.code_version)
        if wanted != found:
            raise StageMismatchError("fast index was made for another model, manifest or config")
        return index


def _projector(params: Mapping[str, torch.Tensor], names: Sequence[str], config: TDAConfig):
    return Projector(
        {n: tuple(params[n].shape) for n in names}, dim=config.projection_dim,
        kind=config.projection, seed=config.seed,
    )  # fmt: skip


def _features(grads, scale, projector: Projector, names, config: TDAConfig) -> torch.Tensor:
    conditioned = {}
    for name in names:
        g = grads[name]
        if not torch.isfinite(g).all():
            raise NonFiniteGradientError(f"non-finite gradient of {name}")
        conditioned[name] = (g.to(config.dtype) * scale[name]).float()
    return projector.project(conditioned)


def compare(exact: np.ndarray, fast: np.ndarray) -> dict[str, float]:
    """Agreement of fast-path scores with exact ones: Spearman, Pearson, same top-1."""
    exact, fast = np.asarray(exact, dtype=np.float64), np.asarray(fast, dtype=np.float64)
    pearson = float(np.corrcoef(exact, fast)[0, 1]) if exact.size > 1 else float("nan")
    return {
        "spearman": spearman(exact, fast),
        "pearson": pearson,
        "top1_agrees": float(np.argmax(exact) == np.argmax(fast)),
    }


def time_per_query(run: Callable[[], Any], repeats: int = 3) -> float:
    """Best wall time of `repeats` calls (seconds): the least disturbed by other load."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best
