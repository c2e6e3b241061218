"""What the TDA stages need from a model: the `AttributionTarget` protocol, the `Example` batch,
the training `Manifest`, reproducible (t, noise) draws, and per-sample gradients.

The stages are model-agnostic: any torch module works behind a target that says which
parameters form each layer group, how a training item becomes an example (x0, conditioning,
padding mask), and what the per-sample loss is. The platform's DiT is adapted in
`platform_model.py`; targets register by name and `build_target` imports them lazily.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from attribution.tda.config import draw_seed
from attribution.tda.errors import TDAConfigError

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class Example:
    """A batch of examples: clean data, the model's conditioning, the padding mask."""

    x0: torch.Tensor  # (B, *shape) clean data; noise is drawn shaped like x0[i]
    cond: Any  # target-specific conditioning, batch-first (converted by the target)
    mask: torch.Tensor | None  # (B, T) bool, True = real (unpadded) frame; None = no padding

    @property
    def batch_size(self) -> int:
        return self.x0.shape[0]


@runtime_checkable
class AttributionTarget(Protocol):
    """Adapts one model family to the TDA stages."""

    name: str

    def prepare(self, model: nn.Module) -> nn.Module:
        """Put `model` in the state every pass uses (eval, vmap-friendly kernels)."""

    def layer_groups(self, model: nn.Module) -> Mapping[str, Sequence[str]]:
        """Parameter names by group ("blocks", "self_attn", "cross_attn", "cross_attn_kv")."""

    def example(self, item: Any) -> Example:
        """The deterministic example (batch of 1) of a training item."""

    def collate(self, examples: Sequence[Example]) -> Example:
        """Concatenate examples of batch 1 or more into one batch."""

    def cond_to_tensors(self, cond: Any) -> tuple[torch.Tensor, ...]:
        """Conditioning as batch-first tensors (what vmap and `.to(device)` act on)."""

    def cond_from_tensors(self, tensors: Sequence[torch.Tensor]) -> Any: ...

    def loss(
        self,
        model: nn.Module,
        batch: Example,
        timesteps: torch.Tensor,  # (B, K) in [0, 1]
        noise: torch.Tensor,  # (B, K, *x0.shape[1:])
        mask: torch.Tensor | None,  # (B, T) frames that count, or None for all
        per_draw: bool = False,
    ) -> torch.Tensor:
        """Per-sample loss (B,), averaged over the K draws, or (B, K) with `per_draw`; the
        model attends with batch.mask."""

    def item_id(self, item: Any) -> Any:
        """A JSON-serialisable identifier of a training item (e.g. its recording id)."""


# -- registry ------------------------------------------------------------------------------

_TARGETS: dict[str, str] = {"mel-dit": "attribution.tda.platform_model:PlatformTarget"}


def register_target(name: str, path: str) -> None:
    """Register a target class by "module:Class" path (imported only when built)."""
    _TARGETS[name] = path


def build_target(name: str, **kwargs: Any) -> AttributionTarget:
    if name not in _TARGETS:
        raise TDAConfigError(f"unknown attribution target {name!r}; known: {sorted(_TARGETS)}")
    module, _, cls = _TARGETS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)


# -- the training manifest -----------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """The training set scores are computed over, in a fixed order, and the hash of its data
    (every stage file stores it and refuses another).

    An item may be one window of a training recording: `ids` then repeat the recording's id
    for each of its windows (scores are aggregated per id), and `segments` say which part of
    the recording each item is, (start seconds, real seconds)."""

    items: Sequence[Any]
    ids: tuple[Any, ...]
    digest: str
    segments: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if len(self.items) == 0:
            raise TDAConfigError("the training manifest is empty")
        if len(self.ids) != len(self.items):
            raise TDAConfigError("the manifest needs one id per item")
        if not isinstance(self.digest, str) or not self.digest:
            raise TDAConfigError("the manifest needs a digest")
        if self.segments and len(self.segments) != len(self.items):
            raise TDAConfigError("the manifest needs one segment per item, or none")

    def recordings(self) -> list[Any]:
        """The distinct ids in manifest order (the recordings, when items are windows)."""
        return list(dict.fromkeys(self.ids))

    def __len__(self) -> int:
        return len(self.items)


# -- tensors to and from devices, digests ---------------------------------------------------


def example_to(target: AttributionTarget, example: Example, device: torch.device) -> Example:
    cond = target.cond_from_tensors([t.to(device) for t in target.cond_to_tensors(example.cond)])
    mask = None if example.mask is None else example.mask.to(device)
    return Example(example.x0.to(device), cond, mask)


def example_digest(target: AttributionTarget, example: Example) -> str:
    """sha256 over the example's tensors (identifies a query)."""
    digest = hashlib.sha256()
    tensors = [example.x0, *target.cond_to_tensors(example.cond)]
    if example.mask is not None:
        tensors.append(example.mask)
    for tensor in tensors:
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{data.dtype}{tuple(data.shape)}".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def model_digest(model: nn.Module) -> str:
    """sha256 of a model's state dict, for callers without a checkpoint hash."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        data = value.detach().cpu().contiguous()
        digest.update(f"{name}{data.dtype}{tuple(data.shape)}".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def group_names(target: AttributionTarget, model: nn.Module, group: str) -> list[str]:
    groups = target.layer_groups(model)
    if group not in groups:
        raise TDAConfigError(f"layer group {group!r} unknown to {target.name}: {sorted(groups)}")
    names = list(groups[group])
    if not names:
        raise TDAConfigError(f"layer group {group!r} has no parameters")
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise TDAConfigError(f"layer group {group!r} names unknown parameters: {missing[:3]}")
    return names


# -- common random numbers -------------------------------------------------------------------


def draws(
    seed: int, purpose: str, key: Any, count: int, shape: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified timesteps (count,) in [0, 1) and standard normal noise (count, *shape), drawn
    on the CPU in float32 from `draw_seed(seed, purpose, key)`."""
    generator = torch.Generator().manual_seed(draw_seed(seed, purpose, key))
    u = torch.rand(count, generator=generator)
    timesteps = (torch.arange(count, dtype=torch.float32) + u) / count  # one per stratum
    noise = torch.randn((count, *shape), generator=generator)
    return timesteps, noise


def batch_draws(
    seed: int, purpose: str, keys: Sequence[Any], count: int, shape: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """`draws` for several items stacked: (B, count), (B, count, *shape)."""
    pairs = [draws(seed, purpose, key, count, shape) for key in keys]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def spread_indices(total: int, count: int) -> list[int]:
    """`count` indices spread evenly over [0, total) (all of them when count >= total)."""
    count = min(count, total)
    if count <= 0:
        return []
    return sorted({int(round(v)) for v in np.linspace(0, total - 1, count)})


# -- functional gradients ------------------------------------------------------------------


class _LossModule(nn.Module):
    """Wraps model + target loss so `torch.func.functional_call` can swap parameters."""

    def __init__(self, target: AttributionTarget, model: nn.Module) -> None:
        super().__init__()
        self.target = target
        self.model = model

    def forward(self, batch: Example, timesteps, noise, mask, per_draw=False) -> torch.Tensor:
        return self.target.loss(self.model, batch, timesteps, noise, mask, per_draw)


def split_params(
    model: nn.Module, names: Sequence[str]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(chosen parameters, everything else incl. buffers), detached, keyed for `_LossModule`."""
    chosen = set(names)
    params = {n: p.detach() for n, p in model.named_parameters() if n in chosen}
    fixed = {f"model.{n}": p.detach() for n, p in model.named_parameters() if n not in chosen}
    fixed.update({f"model.{n}": b for n, b in model.named_buffers()})
    return params, fixed


def loss_with(
    target: AttributionTarget,
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    fixed: Mapping[str, torch.Tensor],
    batch: Example,
    timesteps: torch.Tensor,
    noise: torch.Tensor,
    mask: torch.Tensor | None,
    per_draw: bool = False,
) -> torch.Tensor:
    """The target's per-sample loss with `params` in place of the model's own."""
    module = _LossModule(target, model)
    state = dict(fixed) | {f"model.{n}": p for n, p in params.items()}
    return torch.func.functional_call(module, state, (batch, timesteps, noise, mask, per_draw))


def query_draws(
    query: Example, timesteps: torch.Tensor, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One draw set (1, k) / (1, k, *shape) given to every window of a query: a long output
    is attributed as its windows, and its loss is their mean over the same draws."""
    windows = query.batch_size
    return timesteps.expand(windows, *timesteps.shape[1:]), noise.expand(windows, *noise.shape[1:])


def per_sample_grads(
    target: AttributionTarget,
    model: nn.Module,
    names: Sequence[str],
    batch: Example,
    timesteps: torch.Tensor,  # (S, k)
    noise: torch.Tensor,  # (S, k, *shape)
    use_mask: bool,
) -> dict[str, torch.Tensor]:
    """Gradient of each sample's loss (mean over its k draws) w.r.t. the `names` parameters:
    {name: (S, *param.shape)}, by `torch.func.vmap(grad(...))`."""
    params, fixed = split_params(model, names)
    cond_tensors = target.cond_to_tensors(batch.cond)
    has_mask = batch.mask is not None

    def one(p, x0, mask, t, eps, *cond):
        single = Example(
            x0[None], target.cond_from_tensors([c[None] for c in cond]),
            mask[None] if has_mask else None,
        )  # fmt: skip
        scored = single.mask if (use_mask and has_mask) else None
        return loss_with(target, model, p, fixed, single, t[None], eps[None], scored)[0]

    mask = batch.mask if has_mask else torch.zeros(batch.batch_size, 1, dtype=torch.bool)
    mask = mask.to(batch.x0.device)
    in_dims = (None, 0, 0, 0, 0, *([0] * len(cond_tensors)))
    grad_fn = torch.func.vmap(torch.func.grad(one), in_dims=in_dims)
    return grad_fn(params, batch.x0, mask, timesteps, noise, *cond_tensors)
