"""Cosine v-diffusion: the training/attribution loss and the DDIM sampler.

x_t = alpha_t x0 + sigma_t eps with alpha_t = cos(pi t / 2), sigma_t = sin(pi t / 2);
the objective is the MSE on v = alpha_t eps - sigma_t x0 (stable-audio-tools "v" objective).

The network itself predicts x0 and returns v = (alpha_t x_t - x0_hat) / sigma_t ("x-prediction,
v-loss", Li & He 2025, "Back to Basics: Let Denoising Generative Models Denoise"). A latent-free
patch of 8 frames x 80 mel bins has 640 values and the model 256 channels: a network that has to
output v (mostly noise) through that bottleneck cannot remove the noise outside the 256
dimensions it sees, and its samples keep a grain of residual noise; clean spectrogram patches
do fit, so predicting x0 does not have that problem. The v-loss weights the x0 error by
1 / sigma_t^2; that weight is capped at 1 / LOSS_SIGMA_FLOOR^2 for the nearly clean timesteps.

`diffusion_loss` draws nothing itself: the caller passes the timesteps and the noise, so the
losses before and after an unlearning step use the same draws (common random numbers).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from generation.model.conditioning import Conditioning, collate
from generation.model.config import GeneratorError

Progress = Callable[[int, int], None]
LOSS_SIGMA_FLOOR = 0.05  # below this noise level the v-loss weight stops growing


def alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)


def diffusion_loss(
    model: torch.nn.Module,
    x0: torch.Tensor,  # (B, M, T) clean normalised log-mel
    cond: Conditioning,
    timesteps: torch.Tensor,  # (B,) or (B, K) in [0, 1]
    noise: torch.Tensor,  # like x0, or (B, K, M, T) with (B, K) timesteps
    mask: torch.Tensor | None = None,  # (B, T) bool: frames that count in the loss
    frame_mask: torch.Tensor | None = None,  # (B, T) bool: padding mask the model attends with
    per_draw: bool = False,  # with (B, K) timesteps: return (B, K), one loss per draw
) -> torch.Tensor:
    """Per-sample MSE between predicted and true v -> (B,), the weight of timesteps with
    sigma_t < LOSS_SIGMA_FLOOR scaled down by (sigma_t / LOSS_SIGMA_FLOOR)^2 (there the x0 error
    counts as at the floor instead of growing without bound).

    With (B, K) timesteps the loss of each sample is averaged over its K draws (kept apart with
    `per_draw`: attribution's standard errors come from the per-draw differences). `mask` limits the
    average to valid frames (M_L); `frame_mask` is what the model sees (pass the example's mask
    to run the model as it was trained, independently of which frames are scored).
    """
    batch = x0.shape[0]
    draws = 1
    if timesteps.dim() == 2:
        draws = timesteps.shape[1]
        if noise.shape != (batch, draws, *x0.shape[1:]):
            raise GeneratorError(f"noise must be {(batch, draws, *x0.shape[1:])}")
        x0 = x0.repeat_interleave(draws, dim=0)  # (B * K, M, T)
        cond = cond.repeat_interleave(draws)
        noise = noise.reshape(batch * draws, *noise.shape[2:])
        timesteps = timesteps.reshape(-1)
        mask = None if mask is None else mask.repeat_interleave(draws, dim=0)
        frame_mask = None if frame_mask is None else frame_mask.repeat_interleave(draws, dim=0)
    elif timesteps.shape != (batch,) or noise.shape != x0.shape:
        raise GeneratorError("timesteps must be (B,) or (B, K) and noise shaped like x0")
    alpha, sigma = alpha_sigma(timesteps.to(x0.dtype)[:, None, None])
    x_t = alpha * x0 + sigma * noise
    target = alpha * noise - sigma * x0
    floor = (sigma / LOSS_SIGMA_FLOOR).clamp(max=1.0) ** 2  # (B * K, 1, 1)
    error = floor * (model(x_t, timesteps, cond, frame_mask) - target) ** 2  # (B * K, M, T)
    # Reduced in float64: training-data attribution subtracts losses that differ by ~1e-5 of
    # their size, below the resolution of a float32 mean (scores came out in steps of 2^-21).
    error = error.double()
    if mask is None:
        loss = error.mean(dim=(1, 2))
    else:
        weight = mask.to(error.dtype)[:, None, :]  # (B * K, 1, T)
        loss = (error * weight).sum(dim=(1, 2)) / (weight.sum(dim=(1, 2)) * error.shape[1])
    loss = loss.reshape(batch, draws)
    return loss if per_draw else loss.mean(dim=1)  # (B, K) or (B,)


def guided_x0(
    model: torch.nn.Module,
    x: torch.Tensor,
    t: torch.Tensor,
    cond: Conditioning,
    cfg_scale: float,
    frame_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """x0 prediction with classifier-free guidance, u + s (c - u), both branches in one batch
    (the same as guiding v: at fixed x_t, v is affine in x0)."""
    if cfg_scale == 1.0:
        return model.predict_x0(x, t, cond, frame_mask)
    if cfg_scale == 0.0:
        return model.predict_x0(x, t, cond.unconditional(), frame_mask)
    both = collate([cond, cond.unconditional()])
    mask2 = None if frame_mask is None else torch.cat([frame_mask, frame_mask])
    x2, t2 = torch.cat([x, x]), torch.cat([t, t])
    x0_cond, x0_uncond = model.predict_x0(x2, t2, both, mask2).chunk(2)
    return x0_uncond + cfg_scale * (x0_cond - x0_uncond)


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    cond: Conditioning,
    shape: tuple[int, int, int],  # (B, M, T)
    *,
    steps: int,
    cfg_scale: float,
    generator: torch.Generator,
    init: torch.Tensor | None = None,  # (B, M, T) normalised log-mel to start from
    strength: float = 1.0,  # start time when there is an init (SDEdit); 1 = pure noise
    keep: torch.Tensor | None = None,  # (B, T) bool: frames taken from init (inpainting)
    frame_mask: torch.Tensor | None = None,
    progress: Progress | None = None,
    guidance_interval: tuple[float, float] = (0.0, 1.0),  # t where CFG applies; else cond only
) -> torch.Tensor:
    """DDIM (eta = 0) from t = strength down to 0 -> x0 (B, M, T).

    All randomness is one noise tensor drawn from `generator` on the CPU, so a seed gives the same
    result on any device. SDEdit: init noised to t = strength, ceil(steps * strength) steps.
    Inpainting: frames in `keep` are replaced by the init noised to the current t after every
    step (with the same noise), and by the init itself at the end.
    Guidance applies at steps whose t lies in `guidance_interval` (Kynkaanniemi et al. 2024,
    "Applying guidance in a limited interval"); the other steps use the conditional
    prediction alone.
    """
    device = next(model.parameters()).device
    noise = torch.randn(shape, generator=generator).to(device)
    if (keep is not None or strength < 1.0) and init is None:
        raise GeneratorError("SDEdit and inpainting need an init")
    start = float(strength) if init is not None else 1.0
    count = max(1, math.ceil(steps * start))
    times = torch.linspace(start, 0.0, count + 1, device=device)
    keep3 = None if keep is None else keep.to(device)[:, None, :]  # (B, 1, T)

    def known(t: torch.Tensor) -> torch.Tensor:
        alpha, sigma = alpha_sigma(t)
        return alpha * init + sigma * noise

    x = noise if init is None else known(times[0])
    batch = shape[0]
    low, high = guidance_interval  # decided for every step up front: no device sync per step
    scales = [cfg_scale if low <= t <= high else 1.0 for t in times[:-1].tolist()]
    for i in range(count):
        t, t_next = times[i], times[i + 1]
        x0_hat = guided_x0(model, x, t.expand(batch), cond, scales[i], frame_mask)
        alpha, sigma = alpha_sigma(t)
        eps_hat = (x - alpha * x0_hat) / sigma  # t > 0 inside the loop
        alpha_next, sigma_next = alpha_sigma(t_next)
        x = alpha_next * x0_hat + sigma_next * eps_hat
        if keep3 is not None:
            x = torch.where(keep3, known(t_next), x)
        if progress is not None:
            progress(i + 1, count)
    if keep3 is not None:
        x = torch.where(keep3, init, x)  # exactly the init outside the region
    return x
