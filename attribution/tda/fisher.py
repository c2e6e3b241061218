"""Diagonal Fisher information over the training manifest (seed 000 section 2.2).

F_jj = 1/N sum_i 1/T sum_t (dL_t(z_i, theta) / dtheta_j)^2 ("per_timestep", the paper's
formula), or with the gradient averaged over the T draws before squaring ("per_item").
Per-sample gradients come from `torch.func.vmap(grad(...))`; squares are accumulated in float64
(`TDAConfig.accumulate_dtype`). The Fisher is per parameter, so one Fisher over the largest
group (`blocks`) serves every sub-group; it is computed once per model version and saved with
its settings, the model version and the manifest digest, and refuses to load for other ones.

Zero entries (parameters no training gradient reaches) are counted and, when the Fisher is
used, raised to the floor max(fisher_eps, fisher_floor * mean(F over the group)) so Eq. 6 never
divides by zero. NaN or infinite values raise `NonFiniteFisherError`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attribution.tda.config import CODE_VERSION, TDAConfig, fingerprint
from attribution.tda.errors import NonFiniteFisherError, StageMismatchError, TDAConfigError
from attribution.tda.target import (
    AttributionTarget,
    Example,
    Manifest,
    Progress,
    batch_draws,
    example_to,
    group_names,
    per_sample_grads,
    spread_indices,
)

FISHER_FORMAT = 1


@dataclass
class FloorReport:
    floor: float  # the value entries were raised to
    floored: int  # entries below the floor (zeros included)
    zeros: int  # entries exactly zero
    total: int


@dataclass
class FisherInfo:
    diagonal: dict[str, torch.Tensor]  # name -> float64 tensor shaped like the parameter (CPU)
    model_version: str
    manifest_digest: str
    settings: dict[str, Any]  # TDAConfig.fisher_settings()
    items: int
    code_version: str = CODE_VERSION
    seconds: float = 0.0
    target: str = ""
    zero_counts: dict[str, int] = field(default_factory=dict)

    @property
    def zeros(self) -> int:
        return int(sum(self.zero_counts.values()))

    def check(self, *, model_version: str, manifest_digest: str, config: TDAConfig,
              names: Sequence[str] = ()) -> None:  # fmt: skip
        """Raise StageMismatchError unless this Fisher was made for exactly these."""
        problems = []
        if self.model_version != model_version:
            problems.append(f"model version {self.model_version[:12]} != {model_version[:12]}")
        if self.manifest_digest != manifest_digest:
            problems.append(
                f"manifest digest {self.manifest_digest[:12]} != {manifest_digest[:12]}"
            )
        if self.settings != config.fisher_settings():
            problems.append(f"settings {self.settings} != {config.fisher_settings()}")
        if self.code_version != CODE_VERSION:
            problems.append(f"code version {self.code_version} != {CODE_VERSION}")
        missing = [n for n in names if n not in self.diagonal]
        if missing:
            problems.append(f"no Fisher for parameters {missing[:3]}")
        if problems:
            raise StageMismatchError("saved Fisher does not match: " + "; ".join(problems))

    def floored(
        self, names: Sequence[str], config: TDAConfig
    ) -> tuple[dict[str, torch.Tensor], FloorReport]:
        """The group's Fisher with small entries raised to the floor (float64)."""
        values = [self.diagonal[n] for n in names]
        total = sum(v.numel() for v in values)
        mean = float(sum(v.sum() for v in values)) / total
        floor = max(config.fisher_eps, config.fisher_floor * mean)
        floored = sum(int((v < floor).sum()) for v in values)
        zeros = sum(int((v == 0).sum()) for v in values)
        out = {n: v.clamp_min(floor) for n, v in zip(names, values, strict=True)}
        return out, FloorReport(floor=floor, floored=floored, zeros=zeros, total=total)

    def stats(self) -> dict[str, Any]:
        values = torch.cat([v.reshape(-1) for v in self.diagonal.values()])
        return {
            "parameters": int(values.numel()),
            "zeros": self.zeros,
            "min": float(values.min()),
            "max": float(values.max()),
            "mean": float(values.mean()),
            "items": self.items,
            "seconds": self.seconds,
        }

    # -- files ---------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FISHER_FORMAT,
            "diagonal": self.diagonal,
            "model_version": self.model_version,
            "manifest_digest": self.manifest_digest,
            "settings": self.settings,
            "items": self.items,
            "code_version": self.code_version,
            "seconds": self.seconds,
            "target": self.target,
            "zero_counts": self.zero_counts,
        }
        atomic_save(payload, path)
        return path

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        model_version: str,
        manifest_digest: str,
        config: TDAConfig,
        names: Sequence[str] = (),
    ) -> FisherInfo:
        data = torch.load(Path(path), map_location="cpu", weights_only=True)
        if not isinstance(data, dict) or data.get("format") != FISHER_FORMAT:
            raise StageMismatchError(f"{path} is not a Fisher file of format {FISHER_FORMAT}")
        data.pop("format")
        info = cls(**data)
        info.check(
            model_version=model_version, manifest_digest=manifest_digest, config=config,
            names=names,
        )  # fmt: skip
        return info

    @property
    def key(self) -> str:
        return fingerprint([self.model_version, self.manifest_digest, self.settings])


def atomic_save(payload: Any, path: Path) -> None:
    """torch.save to a temporary file, then rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def compute_fisher(
    target: AttributionTarget,
    model: nn.Module,
    manifest: Manifest,
    config: TDAConfig,
    *,
    model_version: str,
    group: str | None = None,
    progress: Progress | None = None,
) -> FisherInfo:
    """Diagonal Fisher of `group` (default: config.layer_group) over every manifest item.

    `model` is used as is (already `target.prepare`d and on its device)."""
    started = time.monotonic()
    names = group_names(target, model, group or config.layer_group)
    params = dict(model.named_parameters())
    device = next(model.parameters()).device
    dtype = config.dtype
    sums = {n: torch.zeros(params[n].shape, dtype=dtype, device=device) for n in names}
    draws_per_item = config.fisher_timesteps
    per_timestep = config.fisher_mode == "per_timestep"
    # per_timestep: one vmap sample per (item, draw); per_item: one per item with all draws.
    # Either way a call runs the model on about grad_batch (item, draw) pairs.
    items_per_call = max(1, config.grad_batch // draws_per_item)
    chosen = fisher_sample(len(manifest), config.fisher_items)
    total = len(chosen)
    for start in range(0, total, items_per_call):
        indices = chosen[start : start + items_per_call]
        batch = target.collate([target.example(manifest.items[i]) for i in indices])
        shape = batch.x0.shape[1:]
        t, noise = batch_draws(config.seed, "fisher", indices, draws_per_item, shape)
        if per_timestep:  # (B, K) -> (B * K, 1): every draw its own sample
            batch = _repeat(target, batch, draws_per_item)
            t, noise = t.reshape(-1, 1), noise.reshape(-1, 1, *shape)
        batch = example_to(target, batch, device)
        grads = per_sample_grads(
            target, model, names, batch, t.to(device), noise.to(device), config.loss_mask
        )
        for name in names:
            g = grads[name].to(dtype)
            if not torch.isfinite(g).all():
                raise NonFiniteFisherError(
                    f"non-finite gradient of {name} for items {indices[0]}..{indices[-1]}"
                )
            sums[name] += (g * g).sum(dim=0)
        if progress is not None:
            progress("fisher", start + len(indices), total)
    samples = total * (draws_per_item if per_timestep else 1)
    diagonal = {n: (s / samples).cpu() for n, s in sums.items()}
    for name, value in diagonal.items():
        if not torch.isfinite(value).all():
            raise NonFiniteFisherError(f"Fisher of {name} is not finite")
    return FisherInfo(
        diagonal=diagonal,
        model_version=model_version,
        manifest_digest=manifest.digest,
        settings=config.fisher_settings(),
        items=total,
        seconds=time.monotonic() - started,
        target=target.name,
        zero_counts={n: int((v == 0).sum()) for n, v in diagonal.items()},
    )


def fisher_sample(total: int, count: int) -> list[int]:
    """The manifest items the Fisher averages over: all, or `count` spread evenly."""
    if count <= 0 or count >= total:
        return list(range(total))
    return spread_indices(total, count)


def _repeat(target: AttributionTarget, batch: Example, times: int) -> Example:
    """Each example `times` times in a row."""
    cond = target.cond_from_tensors(
        [c.repeat_interleave(times, dim=0) for c in target.cond_to_tensors(batch.cond)]
    )
    mask = None if batch.mask is None else batch.mask.repeat_interleave(times, dim=0)
    return Example(batch.x0.repeat_interleave(times, dim=0), cond, mask)


def fisher_file_name(model_version: str, manifest_digest: str, config: TDAConfig) -> str:
    """A file name for a shared Fisher, unique per model version, manifest and Fisher
    settings (so runs with other settings never collide on one file)."""
    key = fingerprint([model_version, manifest_digest, config.fisher_settings(), CODE_VERSION])
    return f"fisher-{key[:24]}.pt"


def load_or_compute_fisher(
    path: str | Path,
    target: AttributionTarget,
    model: nn.Module,
    manifest: Manifest,
    config: TDAConfig,
    *,
    model_version: str,
    progress: Progress | None = None,
) -> FisherInfo:
    """The saved Fisher at `path` if it matches (else StageMismatchError), or compute it over
    the `blocks` group when the model has one (so it serves every group) and save it."""
    path = Path(path)
    names = group_names(target, model, config.layer_group)
    if path.exists():
        return FisherInfo.load(
            path, model_version=model_version, manifest_digest=manifest.digest, config=config,
            names=names,
        )  # fmt: skip
    groups = target.layer_groups(model)
    group = "blocks" if set(names) <= set(groups.get("blocks", ())) else config.layer_group
    if group not in groups:
        raise TDAConfigError(f"layer group {group!r} unknown")
    info = compute_fisher(
        target, model, manifest, config, model_version=model_version, group=group,
        progress=progress,
    )  # fmt: skip
    info.save(path)
    return info
