"""Training and held-out evaluation of the default CLAP encoder. Plain module (no Django).

Each recording contributes its first (1 - holdout_fraction) of audio to training and its last
part to evaluation, so held-out clips come from recordings the index knows (clip-to-recording
recall) without having been seen in training. Batches hold distinct recordings; each item is
two random 10-s crops plus a randomly phrased caption. The loss is laion-clap's `ClipLoss`
between audio and caption, plus the same loss between the two crops (clips of one recording
should land together, which is what retrieval and the similarity audit rely on). With
`augment` set, the second crop is often an augmented view (`augment.py`: speed, stretch, noise,
splice), so "the same recording" survives what the audit's robustness study does to it; off by
default, because it costs text recall (docs/retrieval.md). With `pseudo_tags`, the service adds
musicnn's tags to each recording's facts (`pseudo_tags.py`). The held-out report is
`evaluation.py`'s.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from catalog.encoders import EncoderError
from catalog.encoders.augment import (
    AugmentSettings,
    add_noise,
    speed_variant,
    splice,
    stretch_crop,
)
from catalog.encoders.captions import canonical_caption, sampled_caption
from catalog.encoders.default_clap import (
    DefaultClapConfig,
    FrozenSentenceEncoder,
    build_modules,
    pick_device,
)


@dataclass(frozen=True)
class TrainingConfig:
    steps: int = 1500
    batch_size: int = 24
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    holdout_fraction: float = 0.2
    audio_audio_weight: float = 0.5
    captions_per_recording: int = 16
    eval_clips_per_recording: int = 3
    time_budget_seconds: float | None = None  # stop early (and say so) when exceeded
    seed: int = 0
    # Augmented second views; None (the default): two clean crops. Measured on the demo
    # catalogue (docs/retrieval.md), AugmentSettings() cut held-out text recall@1 from 0.50
    # to 0.18: invariance to speed erases the tempo and key that captions name.
    augment: AugmentSettings | None = None
    # musicnn's MagnaTagATune tags of each recording's training part in sampled captions
    # (held-out text recall@1 0.50 with them, 0.46 without, at 700 steps; docs/retrieval.md).
    pseudo_tags: bool = True

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise EncoderError(f"unknown training config keys: {sorted(unknown)}")
        values = dict(values)
        if isinstance(values.get("augment"), dict):
            augment = values["augment"]
            unknown = set(augment) - {f.name for f in fields(AugmentSettings)}
            if unknown:
                raise EncoderError(f"unknown augment keys: {sorted(unknown)}")
            values["augment"] = AugmentSettings(**augment)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainingItem:
    """One recording: mono audio at the model's sample rate plus the metadata for captions."""

    key: str
    audio: np.ndarray
    metadata: dict[str, Any]


@dataclass
class TrainingResult:
    audio_tower: Any
    text_projection: Any
    quality: dict[str, Any]
    steps_done: int
    seconds: float
    final_loss: float
    stopped_early: bool


StepCallback = Callable[[int, int, float], None]


def train_default_clap(
    items: Sequence[TrainingItem],
    *,
    model_config: DefaultClapConfig,
    training_config: TrainingConfig,
    on_step: StepCallback | None = None,
    parent: tuple[Any, Any] | None = None,
) -> TrainingResult:
    """`parent`: an (audio tower, text projection) pair of the same config to start from
    (fine-tuning continues a run on the same data with a fresh schedule) instead of new weights."""
    import torch
    from laion_clap.clap_module.loss import ClipLoss

    if len(items) < 4:
        raise EncoderError(f"need at least 4 recordings to train an encoder, got {len(items)}")
    tc = training_config
    rng = random.Random(tc.seed)
    torch.manual_seed(tc.seed)
    device = pick_device()
    started = time.monotonic()

    audio_tower, text_projection = build_modules(model_config)
    if parent is not None:
        audio_tower.load_state_dict(parent[0].state_dict())
        text_projection.load_state_dict(parent[1].state_dict())
    audio_tower.to(device)
    text_projection.to(device)

    mels = _logmels(audio_tower, items, device)  # per item (T, M) on device
    frames = model_config.window_frames
    train_end = training_ends(mels, frames, tc.holdout_fraction)
    views = _AugmentedViews(audio_tower, items, mels, train_end, model_config, tc, rng, device)

    text_encoder = FrozenSentenceEncoder(device)
    caption_table = [
        [sampled_caption(item.metadata, rng) for _ in range(tc.captions_per_recording)]
        + [canonical_caption(item.metadata)]
        for item in items
    ]
    flat = [c for captions in caption_table for c in captions]
    sentence = torch.from_numpy(text_encoder.encode(flat)).to(device)
    per_item = len(caption_table[0])
    sentence = sentence.view(len(items), per_item, -1)

    logit_scale_text = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07), device=device))
    logit_scale_audio = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07), device=device))
    parameters = [
        *audio_tower.parameters(),
        *text_projection.parameters(),
        logit_scale_text,
        logit_scale_audio,
    ]
    optimiser = torch.optim.AdamW(
        [p for p in parameters if p.requires_grad],
        lr=tc.learning_rate,
        weight_decay=tc.weight_decay,
    )
    clip_loss = ClipLoss()
    batch = min(tc.batch_size, len(items))
    order: list[int] = []
    loss_value, step, stopped_early = float("nan"), 0, False
    audio_tower.train()
    text_projection.train()
    for step in range(1, tc.steps + 1):
        if len(order) < batch:
            order = list(range(len(items)))
            rng.shuffle(order)
        chosen, order = order[:batch], order[batch:]
        crop_a = torch.stack([_crop(mels[i], train_end[i], frames, rng) for i in chosen])
        crop_b = torch.stack([views.second_view(i) for i in chosen])
        captions = torch.stack([sentence[i, rng.randrange(per_item - 1)] for i in chosen])

        audio = audio_tower.forward_logmel(torch.cat([crop_a, crop_b]).unsqueeze(1))
        audio = torch.nn.functional.normalize(audio, dim=-1)
        audio_a, audio_b = audio[:batch], audio[batch:]
        text = torch.nn.functional.normalize(text_projection(captions), dim=-1)
        loss = clip_loss(audio_a, text, logit_scale_text.exp())
        loss = loss + tc.audio_audio_weight * clip_loss(audio_a, audio_b, logit_scale_audio.exp())

        progress = step / tc.steps
        if tc.time_budget_seconds:  # a time budget shortens the schedule, not just the run
            progress = max(progress, (time.monotonic() - started) / tc.time_budget_seconds)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate_at(min(progress, 1.0), tc.learning_rate)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        with torch.no_grad():  # as in CLIP/CLAP: temperature at most 100
            logit_scale_text.clamp_(0, math.log(100))
            logit_scale_audio.clamp_(0, math.log(100))
        loss_value = float(loss.detach())
        if on_step:
            on_step(step, tc.steps, loss_value)
        budget = tc.time_budget_seconds
        if budget is not None and time.monotonic() - started > budget:
            stopped_early = step < tc.steps
            break

    audio_tower.eval()
    text_projection.eval()
    from catalog.encoders.evaluation import held_out_report

    quality = held_out_report(
        audio_tower, text_projection, text_encoder, items, mels, train_end, model_config, tc
    )
    return TrainingResult(
        audio_tower=audio_tower.cpu(),
        text_projection=text_projection.cpu(),
        quality=quality,
        steps_done=step,
        seconds=time.monotonic() - started,
        final_loss=loss_value,
        stopped_early=stopped_early,
    )


def training_ends(mels: list, frames: int, holdout_fraction: float) -> list[int]:
    """Frame where each recording's held-out tail starts (at least one window trains)."""
    return [max(frames, int(len(m) * (1 - holdout_fraction))) for m in mels]


def learning_rate_at(progress: float, peak: float, warmup: float = 0.08) -> float:
    """Linear warm-up then cosine decay to 2% of the peak, over progress in [0, 1]."""
    if progress < warmup:
        return peak * max(progress / warmup, 0.02)
    cosine = 0.5 * (1 + math.cos(math.pi * (progress - warmup) / (1 - warmup)))
    return peak * (0.02 + 0.98 * cosine)


def _logmels(audio_tower, items: Sequence[TrainingItem], device: str) -> list:
    """Log-mel of every whole recording, once: crops are cut from these, not from audio."""
    import torch

    mels = []
    with torch.inference_mode():
        for item in items:
            wave = torch.from_numpy(np.asarray(item.audio, dtype=np.float32)).to(device)
            mels.append(audio_tower.logmel_of(wave.unsqueeze(0))[0, 0].clone())  # (T, M)
    return mels


def _pad(window, frames: int):
    """Pad a short log-mel window with its quietest value up to `frames`."""
    import torch

    if len(window) >= frames:
        return window[:frames]
    pad = window.new_full((frames - len(window), window.shape[1]), float(window.min()))
    return torch.cat([window, pad])


def _crop(mel, end: int, frames: int, rng: random.Random):
    if end <= frames:
        return _pad(mel, frames)
    start = rng.randrange(0, end - frames + 1)
    return mel[start : start + frames]


class _AugmentedViews:
    """Second views of a recording's training part: a clean crop, or an augmented one."""

    def __init__(self, audio_tower, items, mels, train_end, model_config, tc, rng, device):
        import torch

        self.mels, self.train_end, self.rng = mels, train_end, rng
        self.frames = model_config.window_frames
        self.settings: AugmentSettings | None = tc.augment
        self.variants: list[tuple[list, list[int]]] = []  # per speed factor: mels, ends
        if self.settings is None:
            return
        for factor in self.settings.speed_factors:
            faster = [
                TrainingItem(item.key, speed_variant(item.audio, model_config.sample_rate, factor),
                             item.metadata)
                for item in items
            ]  # fmt: skip
            variant = _logmels(audio_tower, faster, device)
            ends = [
                max(self.frames, int(end * len(v) / len(m)))
                for v, m, end in zip(variant, mels, train_end, strict=True)
            ]
            self.variants.append((variant, ends))
        longest = int(self.frames * (1 + self.settings.stretch)) + 2
        noise = torch.from_numpy(
            np.random.default_rng(tc.seed).standard_normal(longest * model_config.hop_length)
        ).float()
        with torch.inference_mode():
            self.noise = audio_tower.logmel_of(noise.to(device).unsqueeze(0))[0, 0].clone()

    def second_view(self, index: int):
        from catalog.encoders.default_clap import LOGMEL_TOP_DB

        rng, aug = self.rng, self.settings
        mel, end = self.mels[index], self.train_end[index]
        if aug is None or rng.random() >= aug.probability:
            return _crop(mel, end, self.frames, rng)
        if self.variants and rng.random() < 0.5:
            variant, ends = rng.choice(self.variants)
            mel, end = variant[index], ends[index]
        factor = rng.uniform(1 - aug.stretch, 1 + aug.stretch)
        crop = stretch_crop(mel, end, self.frames, factor, rng)
        if crop is None:
            crop = _crop(mel, end, self.frames, rng)
        if rng.random() < aug.noise_probability:
            level = rng.uniform(aug.noise_db_min, aug.noise_db_max)
            crop = add_noise(crop, self.noise, level, LOGMEL_TOP_DB)
        if len(self.mels) > 1 and rng.random() < aug.splice_probability:
            other = rng.choice([i for i in range(len(self.mels)) if i != index])
            donor = _crop(self.mels[other], self.train_end[other], self.frames, rng)
            crop = splice(crop, donor, rng.uniform(0.05, 0.35), rng.random() < 0.5)
        return crop
