"""Training the generator on catalogue recordings (plain module, no Django).

Each training example is a crop of one recording's log-mel, conditioned on the CLAP embedding of
a *different* window of the same recording (so the model learns "music like this reference", not
to copy the reference's own frames):

- crop: random start, random length U(min_crop_seconds, max_seconds); recordings shorter than the
  crop are used whole. A batch is padded to its longest crop with the silence value (log floor)
  and a frame mask, so padding really occurs; the model attends with the mask and, unless
  `loss_on_padding`, the loss ignores padded frames. Per-recording usage is counted.
- reference: with probability `track_reference_prob` the unit mean of the windows that do not
  overlap the crop (what a request conditions with is a track vector); otherwise a window that
  does not overlap the crop when there is one, else the window that overlaps it least (a
  one-window recording uses its only window); a random role and a weight
  U(weight_min, weight_max); sometimes a second window; sometimes the caption embedding as the
  text token; classifier-free-guidance dropout of all of it with probability `cond_dropout`.
- AdamW, linear warm-up then cosine decay, gradient clipping; the EMA weights are served.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from generation.model.conditioning import Conditioning, collate
from generation.model.config import GeneratorConfig, GeneratorError, TrainConfig
from generation.model.diffusion import diffusion_loss
from generation.model.dit import DiffusionTransformer
from generation.model.pipeline import Generator, pick_device

StepCallback = Callable[[int, int, float], None]


@dataclass(frozen=True)
class GeneratorTrainingItem:
    recording_id: int
    logmel: np.ndarray  # (n_mels, frames) from MelFrontend.logmel of the whole recording
    windows: list[tuple[float, np.ndarray]]  # (start seconds, 512-d CLAP embedding)
    window_seconds: float
    caption_embedding: np.ndarray | None = None  # 512-d CLAP text embedding of its caption


@dataclass
class TrainingReport:
    generator: Generator  # EMA weights
    losses: list[float]  # training loss per step
    usage: dict[int, dict[str, float]]  # recording_id -> crops, mean_crop_seconds, padding
    crop_settings: dict[str, Any]
    steps_done: int
    seconds: float  # wall time
    device: str
    stopped_early: bool
    train_config: dict[str, Any] = field(default_factory=dict)

    @property
    def final_loss(self) -> float:
        tail = self.losses[-20:]
        return float(np.mean(tail)) if tail else float("nan")


def learning_rate_at(step: int, progress: float, peak: float, warmup: int) -> float:
    """Linear warm-up over the first `warmup` steps, then cosine decay over `progress` in
    [0, 1] (the share of the run done) to 5% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, max(0.0, progress))
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def _check_items(items: Sequence[GeneratorTrainingItem], config: GeneratorConfig) -> None:
    if not items:
        raise GeneratorError("no recordings to train on")
    ids = [item.recording_id for item in items]
    if len(set(ids)) != len(ids):
        raise GeneratorError("recording ids must be distinct")
    for item in items:
        mel = np.asarray(item.logmel)
        if mel.ndim != 2 or mel.shape[0] != config.mel.n_mels or mel.shape[1] < 1:
            raise GeneratorError(
                f"recording {item.recording_id}: log-mel must be ({config.mel.n_mels}, frames), "
                f"got {mel.shape}"
            )
        if not np.all(np.isfinite(mel)):
            raise GeneratorError(f"recording {item.recording_id}: log-mel is not finite")
        if not item.windows:
            raise GeneratorError(f"recording {item.recording_id}: no embedded windows")
        for _, embedding in item.windows:
            if np.asarray(embedding).shape != (config.dit.cond_dim,):
                raise GeneratorError(
                    f"recording {item.recording_id}: window embeddings must be "
                    f"({config.dit.cond_dim},)"
                )


def fit_stats(items: Sequence[GeneratorTrainingItem]) -> tuple[list[float], float]:
    """Per-mel-bin mean and one overall std of the training log-mels."""
    frames = np.concatenate([np.asarray(item.logmel, dtype=np.float64) for item in items], axis=1)
    mean = frames.mean(axis=1)
    std = float((frames - mean[:, None]).std())
    return mean.tolist(), max(std, 1e-3)


def _least_overlapping(item: GeneratorTrainingItem, start: float, end: float) -> list[int]:
    """Indices of the windows overlapping [start, end) least (all those not overlapping it)."""
    overlaps = [
        max(0.0, min(end, w + item.window_seconds) - max(start, w)) for w, _ in item.windows
    ]
    least = min(overlaps)
    return [i for i, overlap in enumerate(overlaps) if overlap <= least + 1e-9]


def _choose_window(
    item: GeneratorTrainingItem, start: float, end: float, rng: random.Random | None
) -> int:
    """A window not overlapping [start, end); else the least overlapping. rng=None: the first."""
    candidates = _least_overlapping(item, start, end)
    return candidates[0] if rng is None else rng.choice(candidates)


def track_vector(item: GeneratorTrainingItem, start: float, end: float) -> np.ndarray:
    """Unit mean of the recording's windows apart from [start, end) (the least overlapping
    ones when every window overlaps it): the training stand-in for the track vector a
    reference conditions with at request time."""
    apart = _least_overlapping(item, start, end)
    mean = np.mean([np.asarray(item.windows[i][1], dtype=np.float64) for i in apart], axis=0)
    norm = np.linalg.norm(mean)
    return (mean / norm if norm > 0 else mean).astype(np.float32)


def _silence(config: GeneratorConfig) -> np.ndarray:
    mean, std = config.stats()
    return ((math.log(config.mel.log_floor) - np.asarray(mean)) / std).astype(np.float32)


def window_starts(item: GeneratorTrainingItem, config: GeneratorConfig) -> list[int]:
    """Start frames of the windows that cover a recording's whole log-mel: max_seconds long,
    back to back, the last one padded (and masked). Training crops are drawn anywhere in the
    recording, so attribution must see all of it, not only its opening."""
    frames = config.mel.frames_for(config.dit.max_seconds)
    return list(range(0, max(1, np.asarray(item.logmel).shape[1]), frames))


def window_layout(total_frames: int, config: GeneratorConfig) -> list[tuple[float, float]]:
    """(start seconds, real seconds) of the windows `window_starts` gives a recording of
    `total_frames` frames: what a training manifest records for attribution."""
    frames = config.mel.frames_for(config.dit.max_seconds)
    fps = config.mel.frames_per_second
    return [
        (round(start / fps, 4), round(min(frames, total_frames - start) / fps, 4))
        for start in range(0, max(1, total_frames), frames)
    ]


def window_example(
    item: GeneratorTrainingItem, config: GeneratorConfig, start_frame: int = 0
) -> tuple[torch.Tensor, Conditioning, torch.Tensor]:
    """The deterministic training example of one window of a recording, for attribution:
    x0 (1, M, T) = max_seconds from `start_frame` (normalised, padded with silence), the
    conditioning the batcher would give that crop with its choices fixed (the first window
    embedding not overlapping it, role roles[0], weight 1, the caption as text when there is
    one; seconds_start = the crop's start, seconds_total = its real seconds) and mask (1, T)."""
    frames = config.mel.frames_for(config.dit.max_seconds)
    mel = np.asarray(item.logmel, dtype=np.float32)
    if not 0 <= start_frame < mel.shape[1]:
        raise GeneratorError(
            f"recording {item.recording_id}: window start {start_frame} is outside its "
            f"{mel.shape[1]} frames"
        )
    mean, std = config.stats()
    real = min(frames, mel.shape[1] - start_frame)
    x0 = np.repeat(_silence(config)[:, None], frames, axis=1)
    crop = mel[:, start_frame : start_frame + real]
    x0[:, :real] = (crop - np.asarray(mean, dtype=np.float32)[:, None]) / std
    mask = torch.zeros(1, frames, dtype=torch.bool)
    mask[:, :real] = True
    fps = config.mel.frames_per_second
    start, seconds = start_frame / fps, real / fps
    window = _choose_window(item, start, start + seconds, None)
    cond = Conditioning.build(
        np.asarray(item.windows[window][1])[None], [0], [1.0], text=item.caption_embedding,
        seconds_start=start, seconds_total=seconds, cond_dim=config.dit.cond_dim,
    )  # fmt: skip
    return torch.from_numpy(x0)[None], cond, mask


def canonical_example(
    item: GeneratorTrainingItem, config: GeneratorConfig
) -> tuple[torch.Tensor, Conditioning, torch.Tensor]:
    """The example of a recording's first window (`window_example` at frame 0)."""
    return window_example(item, config, 0)


class _Batcher:
    """Draws training batches and counts how each recording was used."""

    def __init__(
        self,
        items: Sequence[GeneratorTrainingItem],
        config: GeneratorConfig,
        train: TrainConfig,
        rng: random.Random,
    ) -> None:
        self.items, self.config, self.train, self.rng = items, config, train, rng
        mean, std = config.stats()
        mean_col = np.asarray(mean, dtype=np.float32)[:, None]
        self.mels = [
            torch.from_numpy((np.asarray(i.logmel, dtype=np.float32) - mean_col) / std)
            for i in items
        ]  # each (M, frames)
        self.silence = torch.from_numpy(_silence(config))  # (M,)
        self.fps = config.mel.frames_per_second
        self.order: list[int] = []
        self.usage = {
            item.recording_id: {"crops": 0, "crop_seconds": 0.0, "padded_crops": 0,
                                "padded_frames": 0}
            for item in items
        }  # fmt: skip

    def _reference(self, item: GeneratorTrainingItem, start: float, end: float) -> Conditioning:
        tc, dit, rng = self.train, self.config.dit, self.rng
        if tc.track_reference_prob and rng.random() < tc.track_reference_prob:
            # What the studio conditions with: a track vector (here of the windows apart
            # from the crop, so the model does not learn to copy the crop's own window).
            vectors = [track_vector(item, start, end)]
        else:
            chosen = [_choose_window(item, start, end, rng)]
            if len(item.windows) > 1 and rng.random() < tc.second_reference_prob:
                apart = [i for i in _least_overlapping(item, start, end) if i != chosen[0]]
                others = apart or [i for i in range(len(item.windows)) if i != chosen[0]]
                chosen.append(rng.choice(others))
            vectors = [np.asarray(item.windows[i][1], dtype=np.float32) for i in chosen]
        use_text = item.caption_embedding is not None and rng.random() < tc.text_prob
        return Conditioning.build(
            np.stack(vectors),
            [rng.randrange(len(dit.roles)) for _ in vectors],
            [rng.uniform(tc.weight_min, tc.weight_max) for _ in vectors],
            text=item.caption_embedding if use_text else None,
            seconds_start=start, seconds_total=end - start, cond_dim=dit.cond_dim,
        )  # fmt: skip

    def next(self) -> tuple[torch.Tensor, Conditioning, torch.Tensor]:
        """x0 (B, M, T), conditioning, mask (B, T) for the next batch."""
        tc, rng = self.train, self.rng
        batch = min(tc.batch_size, len(self.items))
        if len(self.order) < batch:
            self.order = list(range(len(self.items)))
            rng.shuffle(self.order)
        chosen, self.order = self.order[:batch], self.order[batch:]
        crops, conds = [], []
        for index in chosen:
            item, mel = self.items[index], self.mels[index]
            seconds = rng.uniform(min(tc.min_crop_seconds, self.config.dit.max_seconds),
                                  self.config.dit.max_seconds)  # fmt: skip
            want = max(1, int(round(seconds * self.fps)))
            length = min(want, mel.shape[1])
            first = rng.randrange(0, mel.shape[1] - length + 1)
            crops.append((index, mel[:, first : first + length]))
            start, end = first / self.fps, (first + length) / self.fps
            conds.append(self._reference(item, start, end))
        frames = max(crop.shape[1] for _, crop in crops)
        x0 = self.silence[None, :, None].repeat(len(crops), 1, frames)  # (B, M, T)
        mask = torch.zeros(len(crops), frames, dtype=torch.bool)
        for row, (index, crop) in enumerate(crops):
            x0[row, :, : crop.shape[1]] = crop
            mask[row, : crop.shape[1]] = True
            used = self.usage[self.items[index].recording_id]
            used["crops"] += 1
            used["crop_seconds"] += crop.shape[1] / self.fps
            padded = frames - crop.shape[1]
            used["padded_crops"] += int(padded > 0)
            used["padded_frames"] += padded
        cond = collate(conds)
        dropped = torch.tensor([rng.random() < self.config.dit.cond_dropout for _ in crops])
        return x0, cond.drop(dropped), mask

    def report(self) -> dict[int, dict[str, float]]:
        out = {}
        for recording_id, used in self.usage.items():
            crops = used["crops"]
            out[recording_id] = {
                "crops": crops,
                "mean_crop_seconds": used["crop_seconds"] / crops if crops else 0.0,
                "padded_crops": used["padded_crops"],
                "padded_frames": used["padded_frames"],
            }
        return out


def _parent_config(parent: Generator, config: GeneratorConfig) -> GeneratorConfig:
    """The config to fine-tune under: `config`'s sampler, the parent's weights' settings."""
    mine, theirs = config.to_dict(), parent.config.to_dict()
    for key in ("dit", "mel"):
        if mine[key] != theirs[key]:
            raise GeneratorError(
                f"the parent generator's {key} settings differ from this run's; fine-tuning "
                "needs the same model (train from scratch instead)"
            )
    return replace(parent.config, sampler=config.sampler)


def train_generator(
    items: Sequence[GeneratorTrainingItem],
    config: GeneratorConfig,
    train: TrainConfig,
    progress: StepCallback | None = None,
    *,
    keep_stats: bool = False,
    parent: Generator | None = None,
) -> TrainingReport:
    """Train a DiT on `items`; returns the EMA generator and how each recording was used.

    `config`'s normalisation stats are replaced by those of `items` unless `keep_stats` (models
    retrained on subsets for attribution's validation must see the data normalised alike);
    `progress(step, total, loss)` is called after every step. With `parent`, training starts
    from its (EMA) weights and keeps its normalisation: the parent's model settings must equal
    `config`'s, since the weights only mean something under them.
    """
    _check_items(items, config)
    started = time.monotonic()
    if parent is not None:
        config = _parent_config(parent, config)
    elif not keep_stats or config.mel_mean is None:
        config = config.with_stats(*fit_stats(items))
    device = pick_device() if train.device == "auto" else train.device
    rng = random.Random(train.seed)
    torch.manual_seed(train.seed)
    model = DiffusionTransformer(config.dit, config.mel.n_mels).to(device)
    if parent is not None:
        model.load_state_dict(parent.model.state_dict())
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (decay if parameter.dim() >= 2 and "embed" not in name else no_decay).append(parameter)
    optimiser = torch.optim.AdamW(
        [{"params": decay, "weight_decay": train.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=train.learning_rate, betas=(0.9, 0.99),
    )  # fmt: skip
    batcher = _Batcher(items, config, train, rng)
    noise_generator = torch.Generator().manual_seed(train.seed)
    losses: list[float] = []
    step, stopped_early = 0, False
    model.train()
    for step in range(1, train.steps + 1):
        x0, cond, mask = batcher.next()
        timesteps = torch.rand(x0.shape[0], generator=noise_generator)
        noise = torch.randn(x0.shape, generator=noise_generator)
        x0, cond, mask = x0.to(device), cond.to(device), mask.to(device)
        loss = diffusion_loss(
            model, x0, cond, timesteps.to(device), noise.to(device),
            mask=None if train.loss_on_padding else mask, frame_mask=mask,
        ).mean()  # fmt: skip
        if not torch.isfinite(loss):
            raise GeneratorError(f"training diverged at step {step} (loss {float(loss)})")
        done = (step - 1) / train.steps
        if train.time_budget_seconds:  # a time budget shortens the schedule, not just the run
            done = max(done, (time.monotonic() - started) / train.time_budget_seconds)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate_at(step - 1, done, train.learning_rate, train.warmup_steps)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimiser.step()
        with torch.no_grad():
            beta = min(train.ema_decay, (1 + step) / (10 + step))
            for target, source in zip(ema.parameters(), model.parameters(), strict=True):
                target.lerp_(source, 1 - beta)
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step, train.steps, losses[-1])
        budget = train.time_budget_seconds
        if budget is not None and time.monotonic() - started > budget:
            stopped_early = step < train.steps
            break

    generator = Generator(ema, config, device=device)
    return TrainingReport(
        generator=generator,
        losses=losses,
        usage=batcher.report(),
        crop_settings={
            "min_crop_seconds": train.min_crop_seconds,
            "max_seconds": config.dit.max_seconds,
            "frames_per_second": config.mel.frames_per_second,
            "padding": "batch padded to its longest crop with the log floor (silence)",
            "loss_on_padding": train.loss_on_padding,
            "attention_mask": "padded frames are masked as self-attention keys",
        },
        steps_done=step,
        seconds=time.monotonic() - started,
        device=str(device),
        stopped_early=stopped_early,
        train_config=train.to_dict(),
    )
