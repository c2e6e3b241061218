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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from attribution.tda.config import CODE_VERSION, TDAConfig, fingerprint
from attribution.tda.errors import NonFiniteGradientError, StageMismatchError
from attribution.tda.evaluate import spearman
from attribution.tda.fisher import FisherInfo, atomic_save
from attribution.tda.score import loss_purpose
from attribution.tda.target import (
    AttributionTarget,
    Example,
    Manifest,
    Progress,
    draw_seed,
    draws,
    example_digest,
    example_to,
    group_names,
    loss_with,
    split_params,
)
from attribution.tda.unlearn import group_gradients

FAST_FORMAT = 2
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
class FirstOrderScores:
    """First-order scores of one query with their replicates (uncertainty.py)."""

    scores: np.ndarray  # (N,) float64
    banks: np.ndarray  # (N, B): the score with training bank b's gradient alone
    groups: np.ndarray  # (N, G): the score with query group g's gradient alone
    gradient: dict[str, torch.Tensor]  # the query's whole unlearning gradient (for theta_u)
    seconds: float = 0.0

    @property
    def replicates(self) -> list[np.ndarray]:
        return [self.banks, self.groups]


@dataclass
class FastIndex:
    """P F^-1/2 g_{i,b}: the projected, preconditioned gradient of every training item's loss,
    one per loss draw bank b (draws keyed like the exact losses', `score.loss_purpose`)."""

    features: torch.Tensor  # (N, B, d) float32
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
        """One gradient per (item, bank), each over the bank's `loss_timesteps` draws: a plain
        backward pass per pair (about 3x faster on CPU than per-sample vmap here, and the
        same numbers). `model`: theta0, prepared, on its device."""
        started = time.monotonic()
        names = group_names(target, model, config.layer_group)
        fisher.check(model_version=model_version, manifest_digest=manifest.digest,
                     config=config, names=names)  # fmt: skip
        device = next(model.parameters()).device
        scale = _inverse_sqrt(fisher, names, config, device)
        params, fixed = split_params(model, names)
        projector = _projector(dict(model.named_parameters()), names, config)
        banks = config.loss_draw_banks
        features = torch.zeros(len(manifest), banks, config.projection_dim)
        for index in range(len(manifest)):
            example = example_to(target, target.example(manifest.items[index]), device)
            mask = example.mask if config.loss_mask else None
            for bank in range(banks):
                t, noise = draws(config.seed, loss_purpose(bank), index, config.loss_timesteps,
                                 example.x0.shape[1:])  # fmt: skip
                t, noise = t.to(device)[None], noise.to(device)[None]

                def item_loss(p, t=t, noise=noise, example=example, mask=mask):
                    return loss_with(target, model, p, fixed, example, t, noise, mask)[0]

                grads = torch.func.grad(item_loss)(params)
                row = _features({n: g[None] for n, g in grads.items()}, scale, projector,
                                names, config)  # fmt: skip
                features[index, bank] = row[0].cpu()
            if progress is not None:
                progress("fast_index", index + 1, len(manifest))
        return cls(
            features=features,
            ids=list(manifest.ids),
            model_version=model_version,
            manifest_digest=manifest.digest,
            settings=config.fast_settings(),
            names=names,
            seconds=time.monotonic() - started,
            _projector=projector,
        )

    def first_order(
        self,
        target: AttributionTarget,
        model: nn.Module,
        query: Example,
        fisher: FisherInfo,
        config: TDAConfig,
        *,
        query_key: str | None = None,
        groups: int | None = None,
    ) -> FirstOrderScores:
        """steps * lr / N * (P F^-1/2 g_i) . (P F^-1/2 g_q) for every item, with the query's
        draws in `groups` groups (default config.query_groups) and the training side in the
        index's banks, so every score has its replicates."""
        started = time.monotonic()
        if config.fast_settings() != self.settings:
            raise StageMismatchError("fast index was built with other settings")
        device = next(model.parameters()).device
        query_key = query_key or example_digest(target, query)
        count = config.fast_query_timesteps or config.unlearn_timesteps
        groups = groups or min(config.query_groups, count)
        scale = _inverse_sqrt(fisher, self.names, config, device)
        if self._projector is None:
            self._projector = _projector(dict(model.named_parameters()), self.names, config)
        projected, total = [], None
        for grads in group_gradients(
            target, model, query, config, names=self.names, query_key=query_key,
            groups=groups, draws_total=count,
        ):  # fmt: skip
            projected.append(
                _features(
                    {n: g[None] for n, g in grads.items()},
                    scale,
                    self._projector,
                    self.names,
                    config,
                )[0].cpu()  # fmt: skip
            )
            total = grads if total is None else {n: total[n] + grads[n] for n in total}
        factor = config.steps * config.learning_rate / len(self.ids)
        q = torch.stack(projected).double()  # (G, d)
        if config.kernel == "trak":
            q = q @ self.kernel_inverse(config.kernel_damping)  # symmetric: M q = (q^T M)^T
        f = self.features.double()  # (N, B, d)
        f_mean, q_mean = f.mean(dim=1), q.mean(dim=0)
        return FirstOrderScores(
            scores=(f_mean @ q_mean).numpy() * factor,
            banks=(f @ q_mean).numpy() * factor,
            groups=(f_mean @ q.T).numpy() * factor,
            gradient={n: (g / len(projected)).cpu() for n, g in total.items()},
            seconds=time.monotonic() - started,
        )

    def kernel_inverse(self, damping: float) -> torch.Tensor:
        """(Phi^T Phi / N + lambda I)^-1 (d, d), Phi = the bank-mean features; lambda =
        damping * trace / d. Computed once per index and damping."""
        cache = self.__dict__.setdefault("_kernels", {})
        if damping not in cache:
            phi = self.features.double().mean(dim=1)  # (N, d)
            gram = phi.T @ phi / phi.shape[0]
            lam = damping * float(torch.diagonal(gram).mean())
            gram += lam * torch.eye(gram.shape[0], dtype=gram.dtype)
            cache[damping] = torch.linalg.inv(gram) * lam  # scaled: ~1 on damped directions
        return cache[damping]

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
        """The first-order scores alone."""
        return self.first_order(
            target, model, query, fisher, config, query_key=query_key, groups=1
        ).scores

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


def fast_index_file_name(model_version: str, manifest_digest: str, config: TDAConfig) -> str:
    """A shared index's file name, unique per model version, manifest and index settings."""
    key = fingerprint([model_version, manifest_digest, config.fast_settings(), CODE_VERSION])
    return f"fast-index-{key[:24]}.pt"


def load_or_build_index(
    path: str | Path,
    target: AttributionTarget,
    model: nn.Module,
    manifest: Manifest,
    fisher: FisherInfo,
    config: TDAConfig,
    *,
    model_version: str,
    progress: Progress | None = None,
) -> FastIndex:
    """The saved index at `path` if it matches (else StageMismatchError), or build and save it
    (once per model version: every query of the first-order method reads it)."""
    path = Path(path)
    if path.exists():
        return FastIndex.load(
            path, model_version=model_version, manifest_digest=manifest.digest, config=config
        )
    index = FastIndex.build(
        target, model, manifest, fisher, config, model_version=model_version, progress=progress
    )
    index.save(path)
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
