"""The regime check every attribution run records.

Unlearning scores (Eq. 2) are exact loss differences after the Eq. 6 update; for a small update
they equal the first-order inner product g_i . delta (delta = theta_u - theta0). Which regime a
run is in decides what its scores mean, so every run measures:

- the query's own-loss rise: L(z_hat, theta_u) / L(z_hat, theta0) - 1 over the unlearning draws
  (seed 000's premise is that unlearning raises it; near 0 means a tiny, linear update);
- exact vs first-order scores on `regime_probe_items` training windows spread evenly over the
  manifest, with the same draws: Pearson near 1 means the first-order computation gives the
  same numbers (and the product may compute it instead, with exact unlearning as the audit).

The exact probe differences are computed in float64: at a small learning rate they are near
float32's rounding of the loss itself, which would report a linear update as non-linear.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from attribution.tda.config import TDAConfig
from attribution.tda.score import loss_purpose
from attribution.tda.target import (
    AttributionTarget,
    Example,
    Manifest,
    draws,
    example_to,
    group_names,
    loss_with,
    query_draws,
    split_params,
    spread_indices,
)


@dataclass
class RegimeCheck:
    own_loss_before: float
    own_loss_after: float
    own_loss_rise: float  # relative: after / before - 1
    probe: list[int]  # manifest indices of the probe windows
    exact: list[float]
    first_order: list[float]
    pearson: float  # exact vs first order over the probe (NaN when undefined)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RegimeCheck:
        return cls(**values)


def regime_check(
    target: AttributionTarget,
    model: nn.Module,
    unlearned: nn.Module,
    query: Example,
    manifest: Manifest,
    config: TDAConfig,
    *,
    query_key: str,
    bank: int = 0,
) -> RegimeCheck:
    """Measure the regime of one run (models prepared, on one device)."""
    device = next(model.parameters()).device
    names = group_names(target, model, config.layer_group)
    theta0, fixed = split_params(model, names)
    theta_u = dict(unlearned.named_parameters())
    delta = {n: (theta_u[n].detach() - theta0[n]).to(torch.float64) for n in names}

    q = example_to(target, query, device)
    t, noise = draws(config.seed, "unlearn", query_key, config.unlearn_timesteps, q.x0.shape[1:])
    mask = q.mask if config.unlearn_mask else None
    t, noise = query_draws(q, t[None].to(device), noise[None].to(device))
    with torch.no_grad():
        before = float(target.loss(model, q, t, noise, mask).mean())
        after = float(target.loss(unlearned, q, t, noise, mask).mean())

    probe = spread_indices(len(manifest), config.regime_probe_items)
    model64, unlearned64 = _in_float64(model), _in_float64(unlearned)
    exact, linear = [], []
    for index in probe:
        example = example_to(target, target.example(manifest.items[index]), device)
        t, noise = draws(config.seed, loss_purpose(bank), index, config.loss_timesteps,
                         example.x0.shape[1:])  # fmt: skip
        t, noise = t[None].to(device), noise[None].to(device)
        scored = example.mask if config.loss_mask else None

        def item_loss(p, t=t, noise=noise, example=example, scored=scored):
            return loss_with(target, model, p, fixed, example, t, noise, scored)[0]

        example64, t64, noise64 = _example_in_float64(target, example), _widened(t), noise.double()
        with torch.no_grad():
            base = float(target.loss(model64, example64, t64, noise64, scored)[0])
            moved = float(target.loss(unlearned64, example64, t64, noise64, scored)[0])
        grads = torch.func.grad(item_loss)(theta0)
        exact.append(moved - base)
        linear.append(float(sum((grads[n].double() * delta[n]).sum() for n in names)))
    pearson = float("nan")
    if len(probe) >= 3 and np.std(exact) > 0 and np.std(linear) > 0:
        pearson = float(np.corrcoef(exact, linear)[0, 1])
    return RegimeCheck(
        own_loss_before=before,
        own_loss_after=after,
        own_loss_rise=after / before - 1 if before else float("nan"),
        probe=probe,
        exact=exact,
        first_order=linear,
        pearson=pearson,
    )


def _in_float64(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).double()  # same mode as the float32 model


def _widened(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.double() if tensor.is_floating_point() else tensor


def _example_in_float64(target: AttributionTarget, example: Example) -> Example:
    cond = target.cond_from_tensors([_widened(t) for t in target.cond_to_tensors(example.cond)])
    return Example(_widened(example.x0), cond, example.mask)
