"""The platform's DiffusionTransformer (`generation.model`) as an `AttributionTarget`.

- layer groups: `generation.model.layer_groups` (blocks, self_attn, cross_attn, cross_attn_kv);
- a training item is one window of a recording (`TrainingWindow`): `platform_manifest` covers
  every recording with back-to-back max_seconds windows (`generation.model.window_starts`,
  the last one padded and masked), since training crops come from anywhere in it; its
  example is `generation.model.window_example` (normalised, padded with silence, with the
  padding mask and a fixed reference window). coverage="first" keeps only each recording's
  first window (what attribution used before whole-recording coverage);
- the loss: `generation.model.diffusion_loss` with `mask` = the M_U / M_L choice and
  `frame_mask` = the example's padding mask (the model runs as it was trained either way);
- a generated sample's example (`query_example`): its log-mel normalised and padded the same way,
  with the conditioning it was generated with; a long output is one example per window it was
  sampled in, and its loss is their mean.

Imports generation.model (plain torch), never Django.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from attribution.tda.errors import TDAConfigError
from attribution.tda.target import Example, Manifest
from generation.model import (
    Conditioning,
    GenerationSpec,
    GeneratorConfig,
    GeneratorTrainingItem,
    collate,
    continuation_windows,
    diffusion_loss,
    layer_groups,
    window_example,
    window_starts,
)

COVERAGES = ("whole", "first")


@dataclass(frozen=True)
class TrainingWindow:
    """One max_seconds window of a training recording, from `start_frame`."""

    item: GeneratorTrainingItem
    start_frame: int


class PlatformTarget:
    """Adapter of `generation.model.DiffusionTransformer` for a given `GeneratorConfig` (the
    one stored with the checkpoint: its mel statistics normalise the examples)."""

    name = "mel-dit"

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config

    def prepare(self, model: nn.Module) -> nn.Module:
        # Plain attention math: vmap batches it natively (the fused kernel has no per-sample
        # rule), and every pass (Fisher, unlearning, losses) uses the same kernels.
        model.use_fused_attention(False)
        return model.eval()

    def layer_groups(self, model: nn.Module) -> dict[str, list[str]]:
        return layer_groups(model)

    def example(self, item: TrainingWindow | GeneratorTrainingItem) -> Example:
        """A window's example; a bare recording stands for its first window."""
        if isinstance(item, GeneratorTrainingItem):
            item = TrainingWindow(item, 0)
        x0, cond, mask = window_example(item.item, self.config, item.start_frame)
        return Example(x0, cond, mask)

    def query_example(self, logmel: np.ndarray, cond: Conditioning) -> Example:
        """A generated sample z_hat: its log-mel (M, T) as `Generator.generate_mel` returns it,
        normalised and padded with silence to max_seconds, with its padding mask and the
        conditioning (batch of 1) it was generated with. An output longer than the context
        becomes one example per window it was sampled in (`continuation_windows`, each
        window with its own timing), and its loss is their mean."""
        config = self.config
        mel = np.asarray(logmel, dtype=np.float32)
        if mel.ndim != 2 or mel.shape[0] != config.mel.n_mels or mel.shape[1] < 1:
            raise TDAConfigError(f"query log-mel must be ({config.mel.n_mels}, frames)")
        if not np.all(np.isfinite(mel)):
            raise TDAConfigError("query log-mel is not finite")
        if not isinstance(cond, Conditioning) or cond.batch_size != 1:
            raise TDAConfigError("query conditioning must be a Conditioning of batch 1")
        frames = config.mel.frames_for(config.dit.max_seconds)
        mean, std = config.stats()
        mean = np.asarray(mean, dtype=np.float32)[:, None]
        silence = (np.log(config.mel.log_floor) - mean) / std  # (M, 1)
        fps = config.mel.frames_per_second
        windows = continuation_windows(mel.shape[1], config)
        examples = []
        for start, length in windows:
            x0 = np.repeat(silence, frames, axis=1).astype(np.float32)
            x0[:, :length] = (mel[:, start : start + length] - mean) / std
            mask = torch.zeros(1, frames, dtype=torch.bool)
            mask[:, :length] = True
            timed = cond
            if len(windows) > 1:
                timed = replace(
                    cond,
                    seconds_start=torch.tensor([start / fps]),
                    seconds_total=torch.tensor([length / fps]),
                )
            examples.append(Example(torch.from_numpy(x0)[None], timed, mask))
        return examples[0] if len(examples) == 1 else self.collate(examples)

    def spec_conditioning(self, spec: GenerationSpec) -> Conditioning:
        """The conditioning `Generator` samples a spec with (references, roles, weights, text,
        seconds_total of the output), rebuilt from public pieces the way `Generator` does."""
        config, dit = self.config, self.config.dit
        refs = list(spec.references)
        unknown = [r.role for r in refs if r.role not in dit.roles]
        if unknown:
            raise TDAConfigError(f"unknown roles {unknown}")
        if spec.init_audio is not None:
            samples = int(np.asarray(spec.init_audio).size)
        else:
            samples = max(config.mel.hop_length, config.mel.samples_for(float(spec.seconds)))
        embeddings = [np.asarray(r.embedding, dtype=np.float32) for r in refs]
        return Conditioning.build(
            np.stack(embeddings) if refs else None, [dit.roles.index(r.role) for r in refs],
            [float(r.weight) for r in refs], text=spec.text_embedding, seconds_start=0.0,
            seconds_total=samples / config.mel.sample_rate, cond_dim=dit.cond_dim,
        )  # fmt: skip

    def collate(self, examples: Sequence[Example]) -> Example:
        masks = [e.mask for e in examples]
        mask = None if any(m is None for m in masks) else torch.cat(masks)
        return Example(
            torch.cat([e.x0 for e in examples]), collate([e.cond for e in examples]), mask
        )

    def cond_to_tensors(self, cond: Conditioning) -> tuple[torch.Tensor, ...]:
        return cond.to_tensors()

    def cond_from_tensors(self, tensors: Sequence[torch.Tensor]) -> Conditioning:
        return Conditioning.from_tensors(tensors)

    def loss(
        self,
        model: nn.Module,
        batch: Example,
        timesteps: torch.Tensor,
        noise: torch.Tensor,
        mask: torch.Tensor | None,
        per_draw: bool = False,
    ) -> torch.Tensor:
        return diffusion_loss(
            model, batch.x0, batch.cond, timesteps, noise, mask=mask, frame_mask=batch.mask,
            per_draw=per_draw,
        )  # fmt: skip

    def item_id(self, item: TrainingWindow | GeneratorTrainingItem) -> int:
        return int(getattr(item, "item", item).recording_id)


def manifest_digest(items: Sequence[GeneratorTrainingItem]) -> str:
    """sha256 over the training items in order: ids, log-mels, windows, captions."""
    digest = hashlib.sha256()

    def add(array: np.ndarray | None) -> None:
        if array is None:
            digest.update(b"none")
            return
        data = np.ascontiguousarray(array, dtype=np.float32)
        digest.update(f"{data.shape}".encode())
        digest.update(data.tobytes())

    for item in items:
        digest.update(f"item:{int(item.recording_id)}:{float(item.window_seconds)!r}".encode())
        add(np.asarray(item.logmel))
        for start, embedding in item.windows:
            digest.update(f"window:{float(start)!r}".encode())
            add(np.asarray(embedding))
        add(None if item.caption_embedding is None else np.asarray(item.caption_embedding))
    return digest.hexdigest()


def platform_manifest(
    items: Sequence[GeneratorTrainingItem],
    config: GeneratorConfig,
    digest: str | None = None,
    *,
    coverage: str = "whole",
) -> Manifest:
    """The manifest of the generator's training recordings as windows (`coverage` "whole":
    all of each recording; "first": its first window only). `digest` is the caller's data
    manifest hash when it has one (else computed from the items); the window layout is
    hashed in, so a manifest of other windows never matches saved stages."""
    if coverage not in COVERAGES:
        raise TDAConfigError(f"coverage must be one of {COVERAGES}")
    windows, segments = [], []
    fps = config.mel.frames_per_second
    frames = config.mel.frames_for(config.dit.max_seconds)
    for item in items:
        starts = window_starts(item, config)
        for start in starts[:1] if coverage == "first" else starts:
            windows.append(TrainingWindow(item, start))
            real = min(frames, np.asarray(item.logmel).shape[1] - start)
            segments.append((round(start / fps, 4), round(real / fps, 4)))
    layout = f"{digest or manifest_digest(items)}|{coverage}|{frames}"
    return Manifest(
        items=windows,
        ids=tuple(int(w.item.recording_id) for w in windows),
        digest=hashlib.sha256(layout.encode()).hexdigest(),
        segments=tuple(segments),
    )
