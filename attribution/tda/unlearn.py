"""Unlearning a generated sample z_hat (seed 000 Eq. 6):

    theta <- theta + lr * grad L(z_hat, theta) / (N * F)        (repeated `steps` times)

gradient *ascent* on the query's loss, preconditioned by the diagonal Fisher F (floored, see
fisher.py) and scaled by the number N of training items; only the chosen layer group moves.
L(z_hat) is averaged over `unlearn_timesteps` fixed (t, noise) draws derived from (seed, query
digest), the same draws at every step. With M_U (`unlearn_mask`) padded frames do not count in
that loss; the model always attends with the example's padding mask.

Each step starts from the current weights (Wang et al.'s iterative form of Eq. 6's fixed point);
with the default single step the two readings coincide.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from attribution.tda.config import TDAConfig
from attribution.tda.errors import NonFiniteGradientError, StageMismatchError, TDAConfigError
from attribution.tda.fisher import FisherInfo, FloorReport
from attribution.tda.target import (
    AttributionTarget,
    Example,
    Progress,
    draws,
    example_digest,
    example_to,
    group_names,
    loss_with,
    query_draws,
    split_params,
)


@dataclass
class UnlearnResult:
    model: nn.Module  # theta_u: a copy of the model with the group's parameters updated
    values: dict[str, torch.Tensor]  # theta_u of the updated parameters (CPU; what is saved)
    delta: dict[str, torch.Tensor]  # theta_u - theta0 per updated parameter (CPU)
    settings: dict[str, Any]  # TDAConfig.unlearn_settings()
    query_digest: str
    floor: FloorReport
    grad_norm: float  # of the first step's gradient
    update_norm: float  # of theta_u - theta0
    seconds: float


def unlearning_gradient(
    target: AttributionTarget,
    model: nn.Module,
    query: Example,
    config: TDAConfig,
    *,
    names: Sequence[str],
    query_key: str,
    params: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """grad of L(z_hat) = mean over the fixed draws, w.r.t. `names` (accumulate dtype).

    `params` replaces those parameters (later steps); draws are processed `grad_batch` at a
    time, each chunk weighted by its share of the draws."""
    return next(
        group_gradients(
            target,
            model,
            query,
            config,
            names=names,
            query_key=query_key,
            groups=1,
            params=params,
        )  # fmt: skip
    )


def group_gradients(
    target: AttributionTarget,
    model: nn.Module,
    query: Example,
    config: TDAConfig,
    *,
    names: Sequence[str],
    query_key: str,
    groups: int,
    draws_total: int | None = None,
    params: Mapping[str, torch.Tensor] | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """The unlearning gradient's draws split into `groups` equal groups, one gradient each
    (their mean is `unlearning_gradient`'s, which is the single group): the spread between
    groups measures the query side of a first-order score's draw noise. `params` replaces the
    `names` parameters (later unlearning steps)."""
    count = draws_total or config.unlearn_timesteps
    if count % groups:
        raise TDAConfigError(f"{count} query draws do not split into {groups} equal groups")
    device = next(model.parameters()).device
    own, fixed = split_params(model, names)
    params = dict(own if params is None else params)
    query = example_to(target, query, device)  # one example per window of the output
    t_all, noise_all = draws(config.seed, "unlearn", query_key, count, query.x0.shape[1:])
    mask = query.mask if config.unlearn_mask else None
    size = count // groups
    for first in range(0, count, size):
        total = {
            n: torch.zeros(p.shape, dtype=config.dtype, device=device) for n, p in params.items()
        }
        for begin in range(first, first + size, config.grad_batch):
            end = min(first + size, begin + config.grad_batch)
            t, noise = query_draws(
                query, t_all[begin:end].to(device)[None], noise_all[begin:end].to(device)[None]
            )
            share = (end - begin) / size

            def chunk_loss(p, t=t, noise=noise, share=share):
                return loss_with(target, model, p, fixed, query, t, noise, mask).mean() * share

            for name, g in torch.func.grad(chunk_loss)(params).items():
                total[name] += g.to(config.dtype)
        for name, g in total.items():
            if not torch.isfinite(g).all():
                raise NonFiniteGradientError(f"unlearning gradient of {name} is not finite")
        yield total


def unlearn(
    target: AttributionTarget,
    model: nn.Module,
    query: Example,
    fisher: FisherInfo,
    config: TDAConfig,
    *,
    n_items: int,
    query_key: str | None = None,
    gradient: Mapping[str, torch.Tensor] | None = None,
    progress: Progress | None = None,
) -> UnlearnResult:
    """theta_u from theta0 = `model` (prepared, on its device; left unchanged). `gradient`:
    the first step's unlearning gradient when the caller has it already."""
    started = time.monotonic()
    if n_items < 1:
        raise TDAConfigError("n_items (training set size N) must be >= 1")
    names = group_names(target, model, config.layer_group)
    missing = [n for n in names if n not in fisher.diagonal]
    if missing:
        raise StageMismatchError(f"the Fisher has no entries for {missing[:3]}")
    query_key = query_key or example_digest(target, query)
    device = next(model.parameters()).device
    inverse, floor = fisher.floored(names, config)
    scale = {n: config.learning_rate / (n_items * inverse[n].to(device)) for n in names}
    theta0, _ = split_params(model, names)
    current = dict(theta0)
    grad_norm = 0.0
    for step in range(config.steps):
        if step == 0 and gradient is not None:
            grads = {n: gradient[n].to(device, config.dtype) for n in names}
        else:
            grads = unlearning_gradient(
                target, model, query, config, names=names, query_key=query_key, params=current
            )
        if step == 0:
            grad_norm = float(torch.sqrt(sum((g * g).sum() for g in grads.values())))
        current = {
            n: (current[n].to(config.dtype) + scale[n] * grads[n]).to(theta0[n].dtype)
            for n in names
        }
        if progress is not None:
            progress("unlearn", step + 1, config.steps)
    unlearned = apply_params(model, current)
    delta = {n: (current[n] - theta0[n]).cpu() for n in names}
    update_norm = float(torch.sqrt(sum((d.double() ** 2).sum() for d in delta.values())))
    return UnlearnResult(
        model=unlearned,
        values={n: v.detach().cpu() for n, v in current.items()},
        delta=delta,
        settings=config.unlearn_settings(),
        query_digest=query_key,
        floor=floor,
        grad_norm=grad_norm,
        update_norm=update_norm,
        seconds=time.monotonic() - started,
    )


def apply_params(model: nn.Module, values: Mapping[str, torch.Tensor]) -> nn.Module:
    """A copy of `model` with the named parameters replaced by `values`."""
    out = copy.deepcopy(model)
    params = dict(out.named_parameters())
    with torch.no_grad():
        for name, value in values.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))
    return out
