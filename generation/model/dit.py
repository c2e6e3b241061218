"""Diffusion transformer over normalised log-mel spectrograms (stable-audio-tools style).

Reads top to bottom: conditioning embedders (timestep, numbers), rotary embedding, attention,
feed-forward, one block, the model, and `layer_groups` for training-data attribution.

- Input: the noised normalised log-mel x (B, n_mels, T), patchified along time into
  T / patch_frames tokens of n_mels * patch_frames values.
- Global conditioning: Fourier features of the diffusion time t, the timing numbers
  (seconds_start, seconds_total) and the pooled reference/text tokens (as SD3 adds its pooled
  text embedding), applied by adaLN-zero modulation in every block.
- Cross-attention context: a learned register token (always present, so attention is defined
  for the unconditional branch), the two timing tokens, an optional text-prompt token and one
  token per reference = LayerNorm(Linear(CLAP embedding) + role embedding) * weight.
- Self-attention uses rotary positions and a key-padding mask for padded frames; padded frames
  are zeroed before patchifying, so they cannot reach real frames through a shared token.

Parameter names are a contract with attribution (TDA targets layer groups by name):
`blocks.{i}.self_attn.{to_q,to_k,to_v,to_out}` and `blocks.{i}.cross_attn.{to_q,to_k,to_v,to_out}`.
No randomness inside the model (CFG dropout happens in training), and no data-dependent Python
control flow, so `torch.func.vmap(grad(...))` works for per-sample gradients.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from generation.model.conditioning import Conditioning
from generation.model.config import DiTConfig
from generation.model.diffusion import alpha_sigma

# -- conditioning embedders ----------------------------------------------------------------


class FourierFeatures(nn.Module):
    """Learned random Fourier features of a scalar in [0, 1] (stable-audio-tools)."""

    def __init__(self, out_features: int, std: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features // 2, 1) * std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = 2 * math.pi * x[:, None] @ self.weight.T  # (B, out/2)
        return torch.cat([f.cos(), f.sin()], dim=-1)  # (B, out)


class NumberEmbedder(nn.Module):
    """stable-audio-tools `NumberConditioner`: clamp(x / max_value, 0, 1), learned positional
    (Fourier) features [x, sin, cos], then a linear layer to the model width."""

    def __init__(self, dim: int, max_value: float, features: int = 256) -> None:
        super().__init__()
        self.max_value = max_value
        self.weights = nn.Parameter(torch.randn(features // 2))
        self.proj = nn.Linear(features + 1, dim)

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        x = (value.to(self.weights.dtype) / self.max_value).clamp(0, 1)[:, None]  # (B, 1)
        f = x * self.weights[None] * 2 * math.pi  # (B, features/2)
        return self.proj(torch.cat([x, f.sin(), f.cos()], dim=-1))  # (B, dim)


def rotary(tokens: int, head_dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (tokens, head_dim) for rotary position embedding over token positions."""
    inv_freq = 1.0 / (10_000 ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    angles = torch.arange(tokens, device=device).float()[:, None] * inv_freq[None]  # (N, hd/2)
    angles = torch.cat([angles, angles], dim=-1)  # (N, hd)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-second, first], dim=-1) * sin


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


# -- blocks ----------------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head attention; self-attention when `context` is None. Separate q/k/v/out layers
    so attribution can target keys and values by parameter name."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.fused = True  # F.scaled_dot_product_attention; False: plain math (vmap-friendly)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,  # (B, N, D)
        context: torch.Tensor | None = None,  # (B, S, D)
        key_mask: torch.Tensor | None = None,  # (B, S) bool, True = attend
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        batch, tokens, dim = x.shape
        source = x if context is None else context

        def split(t: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, H, L, D/H)
            return t.reshape(batch, t.shape[1], self.heads, dim // self.heads).transpose(1, 2)

        q, k, v = split(self.to_q(x)), split(self.to_k(source)), split(self.to_v(source))
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, S)
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, N, D/H)
        else:
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, N, S)
            if mask is not None:
                scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            out = scores.softmax(dim=-1) @ v  # (B, H, N, D/H)
        return self.to_out(out.transpose(1, 2).reshape(batch, tokens, dim))


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int) -> None:
        super().__init__()
        self.proj_in = nn.Linear(dim, dim * mult)
        self.proj_out = nn.Linear(dim * mult, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_out(F.gelu(self.proj_in(x)))


class DiTBlock(nn.Module):
    """adaLN-zero self-attention, pre-norm cross-attention, adaLN-zero feed-forward."""

    def __init__(self, dim: int, heads: int, ff_mult: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.self_attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.cross_attn = Attention(dim, heads)
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=False)
        self.ff = FeedForward(dim, ff_mult)
        self.modulation = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.modulation.weight)  # zero gates: every block starts as identity
        nn.init.zeros_(self.modulation.bias)

    def forward(
        self,
        h: torch.Tensor,  # (B, N, D)
        g: torch.Tensor,  # (B, D) global conditioning
        context: torch.Tensor,  # (B, S, D)
        context_mask: torch.Tensor,  # (B, S)
        token_mask: torch.Tensor | None,  # (B, N)
        rope: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(F.silu(g))[:, None].chunk(
            6, dim=-1
        )  # each (B, 1, D)
        attended = self.self_attn(modulate(self.norm1(h), shift1, scale1), None, token_mask, rope)
        h = h + gate1 * attended
        h = h + self.cross_attn(self.norm2(h), context, context_mask)
        return h + gate2 * self.ff(modulate(self.norm3(h), shift2, scale2))


# -- the model -------------------------------------------------------------------------------


class DiffusionTransformer(nn.Module):
    """(x_t, t, conditioning) -> v, shaped like x (B, n_mels, T), through an x0 prediction
    (see diffusion.py for why)."""

    def __init__(self, config: DiTConfig, n_mels: int) -> None:
        super().__init__()
        self.config = config
        self.n_mels = n_mels
        dim, patch = config.dim, config.patch_frames
        self.patch_in = nn.Linear(n_mels * patch, dim)
        self.timestep_features = FourierFeatures(config.timestep_features)
        self.timestep_embed = nn.Sequential(
            nn.Linear(config.timestep_features, dim), nn.SiLU(), nn.Linear(dim, dim)
        )
        self.seconds_start = NumberEmbedder(dim, config.max_start_seconds)
        self.seconds_total = NumberEmbedder(dim, config.max_seconds)
        self.timing_global = nn.Linear(2 * dim, dim)
        # cross-attention context
        self.register = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.reference_proj = nn.Linear(config.cond_dim, dim)
        self.role_embed = nn.Embedding(len(config.roles), dim)
        self.text_proj = nn.Linear(config.cond_dim, dim)
        self.text_type = nn.Parameter(torch.randn(dim) * 0.02)
        self.context_norm = nn.LayerNorm(dim)
        self.pooled_global = nn.Linear(dim, dim)
        self.blocks = nn.ModuleList(
            DiTBlock(dim, config.heads, config.ff_mult) for _ in range(config.depth)
        )
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False)
        self.modulation_out = nn.Linear(dim, 2 * dim)
        self.patch_out = nn.Linear(dim, n_mels * patch)
        for layer in (self.modulation_out, self.patch_out):  # starts predicting x0 = 0
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def use_fused_attention(self, enabled: bool) -> DiffusionTransformer:
        """Switch attention between the fused kernel (default, fastest) and plain tensor math,
        which `torch.func.vmap` batches natively (per-sample gradients for attribution)."""
        for module in self.modules():
            if isinstance(module, Attention):
                module.fused = enabled
        return self

    def context(
        self, cond: Conditioning, start: torch.Tensor, total: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cross-attention tokens (B, 4 + R, D), their mask (B, 4 + R), and the pooled
        conditioning (B, D): the mean of the present weighted reference tokens plus the text
        token when present (zero for the unconditional branch)."""
        batch = start.shape[0]
        refs = self.reference_proj(cond.embeddings) + self.role_embed(cond.roles)  # (B, R, D)
        refs = self.context_norm(refs) * cond.weights[..., None].to(refs.dtype)
        text = self.context_norm(self.text_proj(cond.text) + self.text_type)  # (B, D)
        present = cond.ref_mask.to(refs.dtype)[..., None]  # (B, R, 1)
        pooled = (refs * present).sum(dim=1) / present.sum(dim=1).clamp_min(1.0)  # (B, D)
        pooled = pooled + text * cond.text_mask.to(text.dtype)[:, None]
        tokens = torch.cat(
            [
                self.register.expand(batch, -1, -1),
                start[:, None],
                total[:, None],
                text[:, None],
                refs,
            ],
            dim=1,
        )  # (B, 4 + R, D)
        always = torch.ones(batch, 3, dtype=torch.bool, device=tokens.device)
        mask = torch.cat([always, cond.text_mask[:, None], cond.ref_mask], dim=1)  # (B, 4 + R)
        return tokens, mask, pooled

    def forward(
        self,
        x: torch.Tensor,  # (B, n_mels, T) noised normalised log-mel
        t: torch.Tensor,  # (B,) diffusion time in [0, 1]
        cond: Conditioning,
        frame_mask: torch.Tensor | None = None,  # (B, T) bool, True = real frame
    ) -> torch.Tensor:
        """v = (alpha_t x - x0_hat) / sigma_t (B, n_mels, T); sigma_t is clamped at 1e-4."""
        x0 = self.predict_x0(x, t, cond, frame_mask)
        alpha, sigma = alpha_sigma(t.to(x.dtype)[:, None, None])
        return (alpha * x - x0) / sigma.clamp_min(1e-4)

    def predict_x0(
        self,
        x: torch.Tensor,  # (B, n_mels, T) noised normalised log-mel
        t: torch.Tensor,  # (B,)
        cond: Conditioning,
        frame_mask: torch.Tensor | None = None,  # (B, T)
    ) -> torch.Tensor:
        """The network's own output: the clean normalised log-mel x0 (B, n_mels, T)."""
        batch, mels, frames = x.shape
        patch = self.config.patch_frames
        pad = (-frames) % patch
        tokens = (frames + pad) // patch
        token_mask = None
        if frame_mask is not None:
            frame_mask = frame_mask.to(torch.bool)
            x = torch.where(frame_mask[:, None, :], x, 0.0)  # padded frames carry nothing
            padded = F.pad(frame_mask, (0, pad), value=False)
            token_mask = padded.reshape(batch, tokens, patch).any(dim=-1)  # (B, N) any real frame
        x = F.pad(x, (0, pad))  # (B, M, N * P)
        x = x.reshape(batch, mels, tokens, patch).permute(0, 2, 1, 3)  # (B, N, M, P)
        h = self.patch_in(x.reshape(batch, tokens, mels * patch))  # (B, N, D)

        start = self.seconds_start(cond.seconds_start)  # (B, D)
        total = self.seconds_total(cond.seconds_total)  # (B, D)
        g = self.timestep_embed(
            self.timestep_features(t.to(self.timestep_features.weight.dtype))
        )  # (B, D)
        g = g + self.timing_global(torch.cat([start, total], dim=-1))  # (B, D)
        context, context_mask, pooled = self.context(cond, start, total)  # (B, S, D), (B, S)
        g = g + self.pooled_global(pooled)  # (B, D)
        rope = rotary(tokens, self.config.dim // self.config.heads, x.device)

        for block in self.blocks:
            h = block(h, g, context, context_mask, token_mask, rope)  # (B, N, D)

        shift, scale = self.modulation_out(F.silu(g))[:, None].chunk(2, dim=-1)
        h = self.patch_out(modulate(self.norm_out(h), shift, scale))  # (B, N, M * P)
        out = h.reshape(batch, tokens, mels, patch).permute(0, 2, 1, 3)  # (B, M, N, P)
        return out.reshape(batch, mels, tokens * patch)[:, :, :frames]  # (B, M, T)


def layer_groups(model: DiffusionTransformer) -> dict[str, list[str]]:
    """Parameter names by group, for attribution methods that update only some layers.

    blocks: every parameter of the transformer blocks; self_attn / cross_attn: the q, k, v and
    out projections of those attentions; cross_attn_kv: only the cross-attention keys and values
    (what Wang et al. unlearn).
    """
    names = [name for name, _ in model.named_parameters()]

    def having(*parts: str) -> list[str]:
        return [n for n in names if n.startswith("blocks.") and any(p in n for p in parts)]

    return {
        "blocks": having("."),
        "self_attn": having(".self_attn."),
        "cross_attn": having(".cross_attn."),
        "cross_attn_kv": having(".cross_attn.to_k.", ".cross_attn.to_v."),
    }
