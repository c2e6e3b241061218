"""Removing recordings from a trained generator when their training consent is revoked.

The update is seed 000's Eq. 6 turned on training data: gradient *ascent* on the diffusion loss
of the revoked recordings' windows, preconditioned by the diagonal Fisher of the retained data,
only in one layer group. Each step is scaled to a fixed fraction of the group's weight norm (a
trust region), so one setting works across model sizes. Ascent stops when a membership test can
no longer tell the revoked recordings from comparable recordings the model never trained on:
each recording's loss is its windows' mean over the same (t, noise) draws (common random
numbers: window k of every recording gets the draws keyed by k), and a revoked recording is
"forgotten" once its loss reaches `target_percentile` of the held-out recordings' losses. A
short repair fine-tune on the retained data only (the caller's `repair`, which must never see
the revoked audio) then restores what the ascent disturbed; the test is measured again after.
When the test cannot tell them apart before any step (each sits at or above `act_below`, the
model does not lean on them more than on recordings it never saw), nothing is moved and
nothing repaired; the new version's manifest still leaves them out and the verification says
so.

Plain torch, no Django (attribution/tda). The Django job is attribution/services/unlearning.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from attribution.tda.config import TDAConfig
from attribution.tda.errors import NonFiniteGradientError, TDAConfigError
from attribution.tda.fisher import FisherInfo
from attribution.tda.target import (
    AttributionTarget,
    Example,
    Progress,
    draws,
    example_to,
    group_names,
    loss_with,
    split_params,
)
from attribution.tda.unlearn import apply_params

Repair = Callable[[nn.Module], nn.Module]


@dataclass(frozen=True)
class RemovalConfig:
    """How far and how carefully to unlearn, and what counts as success."""

    layer_group: str = "blocks"
    step_fraction: float = 0.01  # each ascent step moves the group by this share of its norm
    max_steps: int = 12
    target_percentile: float = 50.0  # stop once every revoked recording reaches this
    band: tuple[float, float] = (20.0, 80.0)  # verification: percentile among held-out
    # Ascend only when the test tells a recording apart (below this percentile). Inside the
    # band it already passes as unseen, and moving it anyway did harm on the demo: ascent from
    # the 31st percentile plus repair left retained losses +3.7% and the recording steeper.
    act_below: float = 20.0
    loss_draws: int = 8  # (t, noise) draws per window for the membership and retained losses
    gradient_draws: int = 4  # draws per window for the ascent gradient
    retained_tolerance: float = 0.02  # |mean retained loss change| / mean, after repair
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.step_fraction < 1 or self.max_steps < 0:
            raise TDAConfigError("step_fraction must be in (0, 1) and max_steps >= 0")
        low, high = self.band
        if not 0 <= low < self.target_percentile <= high <= 100:
            raise TDAConfigError("need 0 <= band low < target_percentile <= band high <= 100")
        if not 0 <= self.act_below <= self.target_percentile:
            raise TDAConfigError("need 0 <= act_below <= target_percentile")
        if self.loss_draws < 1 or self.gradient_draws < 1 or self.retained_tolerance <= 0:
            raise TDAConfigError("draw counts must be >= 1 and the tolerance > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Membership:
    """Per revoked recording: its loss, and its percentile among the held-out recordings'."""

    revoked: dict[int, float]
    heldout: dict[int, float]

    def percentile(self, recording_id: int) -> float:
        """Share of held-out losses below the recording's (ties count half), in percent."""
        values = np.asarray(list(self.heldout.values()))
        loss = self.revoked[recording_id]
        below = float((values < loss).sum()) + 0.5 * float((values == loss).sum())
        return 100.0 * below / len(values)

    def percentiles(self) -> dict[int, float]:
        return {rid: round(self.percentile(rid), 1) for rid in self.revoked}

    def to_dict(self) -> dict[str, Any]:
        return {
            "revoked_loss": {str(k): round(v, 6) for k, v in self.revoked.items()},
            "heldout_loss": {str(k): round(v, 6) for k, v in self.heldout.items()},
            "percentile": {str(k): v for k, v in self.percentiles().items()},
        }


@dataclass
class RemovalReport:
    """What the removal did and measured, stored with the new model version."""

    config: dict[str, Any]
    before: Membership
    after_ascent: Membership
    after_repair: Membership
    steps: int
    stopped: str  # "target reached" | "max steps" | "already indistinguishable"
    retained_before: float
    retained_after: float
    seconds: dict[str, float] = field(default_factory=dict)
    trajectory: list[dict[str, float]] = field(default_factory=list)

    @property
    def retained_change(self) -> float:
        return (self.retained_after - self.retained_before) / self.retained_before

    def checks(self, config: RemovalConfig) -> dict[str, dict[str, Any]]:
        low, high = config.band
        percentiles = self.after_repair.percentiles()
        return {
            "membership": {
                "passed": all(low <= p <= high for p in percentiles.values()),
                "percentiles": {str(k): v for k, v in percentiles.items()},
                "band": [low, high],
            },
            "retained_loss": {
                "passed": abs(self.retained_change) <= config.retained_tolerance,
                "change": round(self.retained_change, 5),
                "tolerance": config.retained_tolerance,
            },
        }

    def to_dict(self, config: RemovalConfig) -> dict[str, Any]:
        return {
            "config": self.config,
            "membership_before": self.before.to_dict(),
            "membership_after_ascent": self.after_ascent.to_dict(),
            "membership_after_repair": self.after_repair.to_dict(),
            "ascent_steps": self.steps,
            "stopped": self.stopped,
            "retained_loss_before": round(self.retained_before, 6),
            "retained_loss_after": round(self.retained_after, 6),
            "checks": self.checks(config),
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
            "trajectory": self.trajectory,
        }


def _loss_config(config: RemovalConfig) -> TDAConfig:
    return TDAConfig(seed=config.seed, loss_mask=True, unlearn_mask=True)


@torch.no_grad()
def window_losses(
    target: AttributionTarget,
    model: nn.Module,
    windows: Sequence[Example],
    config: RemovalConfig,
    purpose: str = "membership",
) -> np.ndarray:
    """Each window's loss averaged over `loss_draws` draws; window k uses the draws keyed by
    k, whoever it belongs to (common random numbers across recordings and model states)."""
    device = next(model.parameters()).device
    out = np.empty(len(windows))
    for k, window in enumerate(windows):
        example = example_to(target, window, device)
        t, noise = draws(config.seed, purpose, k, config.loss_draws, example.x0.shape[1:])
        loss = target.loss(
            model, example, t[None].to(device), noise[None].to(device), example.mask, True
        )
        value = float(loss.double().mean())
        if not math.isfinite(value):
            raise NonFiniteGradientError(f"non-finite loss on window {k}")
        out[k] = value
    return out


def membership(
    target: AttributionTarget,
    model: nn.Module,
    revoked: Mapping[int, Sequence[Example]],
    heldout: Mapping[int, Sequence[Example]],
    config: RemovalConfig,
) -> Membership:
    """Mean window loss of every revoked and held-out recording under the same draws."""

    def losses(groups: Mapping[int, Sequence[Example]]) -> dict[int, float]:
        return {
            rid: float(window_losses(target, model, list(ws), config).mean())
            for rid, ws in groups.items()
        }

    return Membership(losses(revoked), losses(heldout))


def _ascent_direction(
    target: AttributionTarget,
    model: nn.Module,
    windows: Sequence[Example],
    names: Sequence[str],
    params: Mapping[str, torch.Tensor],
    config: RemovalConfig,
    step: int,
) -> dict[str, torch.Tensor]:
    """Gradient of the revoked windows' mean loss w.r.t. `names` (fresh draws each step)."""
    device = next(model.parameters()).device
    _, fixed = split_params(model, names)
    total = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in params.items()}
    for k, window in enumerate(windows):
        example = example_to(target, window, device)
        t, noise = draws(config.seed, f"removal:{step}", k, config.gradient_draws,
                         example.x0.shape[1:])  # fmt: skip

        def loss(p, example=example, t=t, noise=noise):
            return loss_with(
                target, model, p, fixed, example, t[None].to(device), noise[None].to(device),
                example.mask,
            ).mean() / len(windows)  # fmt: skip

        for name, g in torch.func.grad(loss)(dict(params)).items():
            total[name] += g.double()
    for name, g in total.items():
        if not torch.isfinite(g).all():
            raise NonFiniteGradientError(f"removal gradient of {name} is not finite")
    return total


def remove_recordings(
    target: AttributionTarget,
    model: nn.Module,
    *,
    revoked: Mapping[int, Sequence[Example]],
    heldout: Mapping[int, Sequence[Example]],
    retained: Sequence[Example],
    fisher: FisherInfo,
    config: RemovalConfig,
    repair: Repair | None = None,
    ascent: Mapping[int, Sequence[Example]] | None = None,
    progress: Progress | None = None,
) -> tuple[nn.Module, RemovalReport]:
    """The unlearned and repaired model (`model` is left unchanged) and what was measured.
    `revoked` windows are measured (as many per recording as `heldout` has, for a fair test);
    `ascent` (default: the same) are the windows whose loss is pushed up."""
    if not revoked or not heldout or not retained:
        raise TDAConfigError("need revoked, held-out and retained windows")
    seconds: dict[str, float] = {}
    started = time.monotonic()
    before = membership(target, model, revoked, heldout, config)
    retained_before = float(window_losses(target, model, retained, config, "retained").mean())
    seconds["measure"] = time.monotonic() - started

    names = group_names(target, model, config.layer_group)
    inverse, _ = fisher.floored(names, _loss_config(config))
    theta0, _ = split_params(model, names)
    current = {n: p.clone() for n, p in theta0.items()}
    norm0 = math.sqrt(sum(float((p.double() ** 2).sum()) for p in theta0.values()))
    windows = [w for ws in (ascent or revoked).values() for w in ws]
    state, step, stopped = model, 0, "max steps"
    after_ascent = before
    trajectory = [{"step": 0, **{str(k): v for k, v in before.percentiles().items()}}]
    started = time.monotonic()
    if min(before.percentiles().values()) >= config.act_below:
        stopped = "already indistinguishable"
    while stopped == "max steps" and step < config.max_steps:
        gradient = _ascent_direction(target, state, windows, names, current, config, step)
        direction = {n: g / inverse[n].to(g.device, torch.float64) for n, g in gradient.items()}
        length = math.sqrt(sum(float((d**2).sum()) for d in direction.values()))
        if length == 0:
            stopped = "zero gradient"
            break
        scale = config.step_fraction * norm0 / length
        current = {
            n: (current[n].double() + scale * direction[n]).to(theta0[n].dtype) for n in names
        }
        state = apply_params(model, current)
        step += 1
        after_ascent = membership(target, state, revoked, heldout, config)
        trajectory.append(
            {"step": step, **{str(k): v for k, v in after_ascent.percentiles().items()}}
        )
        if progress is not None:
            progress("ascent", step, config.max_steps)
        if min(after_ascent.percentiles().values()) >= config.target_percentile:
            stopped = "target reached"
    seconds["ascent"] = time.monotonic() - started

    started = time.monotonic()
    # nothing moved when the test could already not tell them apart: nothing to repair
    repaired = repair(state) if repair is not None and step > 0 else state
    seconds["repair"] = time.monotonic() - started
    started = time.monotonic()
    after_repair = membership(target, repaired, revoked, heldout, config)
    retained_after = float(window_losses(target, repaired, retained, config, "retained").mean())
    seconds["measure"] += time.monotonic() - started
    return repaired, RemovalReport(
        config=config.to_dict(),
        before=before,
        after_ascent=after_ascent,
        after_repair=after_repair,
        steps=step,
        stopped=stopped,
        retained_before=retained_before,
        retained_after=retained_after,
        seconds=seconds,
        trajectory=trajectory,
    )


def self_scores(
    target: AttributionTarget,
    model: nn.Module,
    windows: Mapping[int, Sequence[Example]],
    fisher: FisherInfo,
    config: TDAConfig,
    *,
    n_items: int,
    removal: RemovalConfig,
    progress: Progress | None = None,
) -> dict[int, float]:
    """Self-influence of each recording (seed 000 Eq. 6 then Eq. 2 on itself): how much a
    window's own loss rises when it is unlearned as a query, the median over the recording's
    windows (single windows' scores are heavy-tailed: one window can outweigh the rest by
    1,000x). Training members the model leans on score high; a removed recording should score
    like recordings it never saw."""
    from attribution.tda.unlearn import unlearn

    scores = {}
    for rid, group in windows.items():
        rises = []
        for k, window in enumerate(group):
            result = unlearn(target, model, window, fisher, config, n_items=n_items,
                             query_key=f"self:{rid}:{k}")  # fmt: skip
            before = window_losses(target, model, [window], removal, f"self:{k}")
            after = window_losses(target, result.model, [window], removal, f"self:{k}")
            rises.append(float(after[0] - before[0]))
        scores[rid] = float(np.median(rises))
        if progress is not None:
            progress("self-influence", len(scores), len(windows))
    return scores


def no_longer_first(before: Membership, after: Membership, band_high: float) -> dict[str, Any]:
    """The issue's attribution check on self-influence scores (`Membership` of scores, not
    losses): after the removal no revoked recording ranks first among the held-out ones (some
    recording the model never trained on leans on the model more), and either its score
    dropped or it sits inside the membership band (at or below `band_high` percent of the
    held-out recordings), where it already reads as a recording the model never saw.

    Why not "dropped" alone: the scores of recordings that neither model trained on moved by
    factors of 0.05 to 600 between the served and the unlearned demo model (held-out ones,
    untouched by the removal), so a strict drop of a score already at the bottom of theirs
    tests that noise. A never-trained recording ranks first with probability 1 / (held-out + 1).
    """
    verdicts = {}
    for rid in after.revoked:
        percentile = after.percentile(rid)
        verdicts[str(rid)] = {
            "percentile_before": round(before.percentile(rid), 1),
            "percentile_after": round(percentile, 1),
            "ranks_first": percentile >= 100.0,
            "dropped": after.revoked[rid] <= before.revoked[rid],
            "within_band": percentile <= band_high,
        }
    passed = all(
        not v["ranks_first"] and (v["dropped"] or v["within_band"]) for v in verdicts.values()
    )
    return {"passed": passed, "band_high": band_high, "recordings": verdicts}
