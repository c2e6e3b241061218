"""Configs of the generative model: mel front end, DiT, sampler, training, and the bundle.

Every config is a frozen dataclass with `to_dict()` / `from_dict()`; `from_dict` rejects unknown
keys, so a checkpoint is only ever rebuilt from exactly the settings it was trained with.
Model, sampler and training settings are separate (stable-audio-tools keeps the training wrapper
apart from the model config too).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

# Roles a reference can play. The index is the role's embedding id: append, never reorder.
ROLES: tuple[str, ...] = (
    "style",
    "mood",
    "genre",
    "instrument",
    "melody",
    "timbre",
    "rhythm",
    "texture",
)
EMBEDDING_DIM = 512  # CLAP joint space (catalog.encoders.EMBEDDING_DIM)


class GeneratorError(Exception):
    """The generator could not be configured, trained, loaded or applied."""


def _build(cls, values: Any, tuples: tuple[str, ...] = ()):
    """`cls(**values)` that refuses unknown keys and wrong types with GeneratorError."""
    if isinstance(values, cls):
        return values
    if not isinstance(values, Mapping):
        raise GeneratorError(f"{cls.__name__} expects a mapping, got {type(values).__name__}")
    unknown = set(values) - {f.name for f in fields(cls)}
    if unknown:
        raise GeneratorError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    values = dict(values)
    for name in tuples:
        if values.get(name) is not None:
            values[name] = tuple(values[name])
    try:
        return cls(**values)
    except TypeError as exc:
        raise GeneratorError(f"bad {cls.__name__}: {exc}") from exc


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise GeneratorError(message)


@dataclass(frozen=True)
class MelConfig:
    """Log-mel representation the model generates; Griffin-Lim turns it back into audio."""

    sample_rate: int = 22_050
    n_fft: int = 1024
    hop_length: int = 256  # 86.1 frames/s: 862 frames for 10 s
    n_mels: int = 80
    fmin: float = 30.0
    fmax: float = 11_025.0
    log_floor: float = 1e-5  # log(max(mel magnitude, floor)); silence = log(floor)
    inverse_iters: int = 10  # non-negative refinement of the mel pseudo-inverse
    griffin_lim_iters: int = 32
    griffin_lim_momentum: float = 0.99  # "fast Griffin-Lim" (Perraudin et al. 2013)

    def __post_init__(self) -> None:
        _require(self.sample_rate > 0 and self.n_fft > 0, "sample_rate and n_fft must be > 0")
        _require(0 < self.hop_length <= self.n_fft, "hop_length must be in (0, n_fft]")
        _require(self.n_mels > 0, "n_mels must be > 0")
        nyquist = self.sample_rate / 2
        _require(0 <= self.fmin < self.fmax <= nyquist, "need 0 <= fmin < fmax <= sr/2")
        _require(self.log_floor > 0, "log_floor must be > 0")
        _require(self.griffin_lim_iters >= 0 and self.inverse_iters >= 0, "iters must be >= 0")
        _require(0 <= self.griffin_lim_momentum < 1, "griffin_lim_momentum must be in [0, 1)")

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    def samples_for(self, seconds: float) -> int:
        return int(round(seconds * self.sample_rate))

    def frames_for_samples(self, samples: int) -> int:
        """Frames of a centred STFT over `samples` samples."""
        return samples // self.hop_length + 1

    def frames_for(self, seconds: float) -> int:
        return self.frames_for_samples(self.samples_for(seconds))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> MelConfig:
        return _build(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DiTConfig:
    """The diffusion transformer (stable-audio-tools `DiffusionTransformer` in miniature)."""

    dim: int = 256
    depth: int = 6
    heads: int = 4
    ff_mult: int = 3
    patch_frames: int = 8  # frames per token: 10 s = 862 frames = 108 tokens
    cond_dim: int = EMBEDDING_DIM
    roles: tuple[str, ...] = ROLES
    max_seconds: float = 10.0  # longest output; seconds_total is normalised by it
    max_start_seconds: float = 600.0  # seconds_start (offset in the source) is normalised by it
    max_references: int = 8
    cond_dropout: float = 0.1  # classifier-free guidance dropout used by training
    timestep_features: int = 256  # Fourier features of t

    def __post_init__(self) -> None:
        _require(self.dim > 0 and self.depth > 0 and self.heads > 0, "dim/depth/heads must be > 0")
        _require(self.dim % self.heads == 0, "dim must be a multiple of heads")
        _require((self.dim // self.heads) % 2 == 0, "head dim must be even (rotary embedding)")
        _require(self.patch_frames > 0 and self.ff_mult > 0, "patch_frames/ff_mult must be > 0")
        _require(self.cond_dim > 0, "cond_dim must be > 0")
        _require(len(self.roles) > 0, "at least one role")
        _require(len(set(self.roles)) == len(self.roles), "roles must be distinct")
        _require(self.max_seconds > 0 and self.max_start_seconds > 0, "max seconds must be > 0")
        _require(self.max_references >= 1, "max_references must be >= 1")
        _require(0 <= self.cond_dropout < 1, "cond_dropout must be in [0, 1)")
        _require(self.timestep_features % 2 == 0, "timestep_features must be even")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DiTConfig:
        return _build(cls, values, tuples=("roles",))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["roles"] = list(self.roles)
        return data


@dataclass(frozen=True)
class SamplerConfig:
    """Defaults of `Generator.generate` (a request may override steps and cfg_scale)."""

    steps: int = 30  # DDIM steps from t=1 (SDEdit runs ceil(steps * strength))
    # 1 = conditional only, 0 = unconditional only. 6 over t >= 0.3, chosen on 200-output
    # sweeps of the served weights (docs/generation.md, "Guidance in a limited interval"):
    # guidance at the last, nearly clean steps only moved outputs away from real music (FD
    # musicnn), and with those steps unguided a stronger scale no longer cost quality.
    cfg_scale: float = 6.0
    strength: float = 0.6  # SDEdit: noise level the init audio is pushed to
    # Outputs longer than the model's context are sampled window by window, each new window
    # inpainted after the last `continuation_overlap_seconds` of the one before.
    max_output_seconds: float = 60.0
    continuation_overlap_seconds: float = 3.0
    # Noise levels t (1 = pure noise) where guidance applies; the other steps use the
    # conditional prediction alone. (0, 1) = every step.
    guidance_interval: tuple[float, float] = (0.3, 1.0)

    def __post_init__(self) -> None:
        _require(1 <= self.steps <= 1000, "steps must be in [1, 1000]")
        _require(len(self.guidance_interval) == 2, "guidance_interval must be (low, high)")
        low, high = self.guidance_interval
        _require(0 <= low < high <= 1, "guidance_interval needs 0 <= low < high <= 1")
        _require(self.max_output_seconds > 0, "max_output_seconds must be > 0")
        _require(self.continuation_overlap_seconds > 0, "continuation_overlap_seconds must be > 0")
        _require(math.isfinite(self.cfg_scale) and self.cfg_scale >= 0, "cfg_scale must be >= 0")
        _require(0 < self.strength <= 1, "strength must be in (0, 1]")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SamplerConfig:
        if isinstance(values, Mapping):  # saved before the interval existed: guided throughout
            values = {"guidance_interval": (0.0, 1.0), **values}
        return _build(cls, values, tuples=("guidance_interval",))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["guidance_interval"] = list(self.guidance_interval)
        return data


@dataclass(frozen=True)
class TrainConfig:
    """One training run. The defaults are the committed demo model's run (12,000 steps on 2 CPU
    cores; `make demo` installs that checkpoint). When the consented catalogue differs and
    `make demo` has to retrain, `time_budget_seconds` keeps it under the demo's 20 minutes by
    compressing the schedule (see generation/model/README.md for the measurements)."""

    steps: int = 12_000
    batch_size: int = 16
    learning_rate: float = 6e-4
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.995  # warmed up as min(decay, (1 + step) / (10 + step))
    min_crop_seconds: float = 2.0  # crops are U(min_crop_seconds, max_seconds) long
    second_reference_prob: float = 0.3
    # Requests condition on track vectors (means of a recording's windows), so training does
    # too this often; the rest of the time on single windows (segment references).
    track_reference_prob: float = 0.5
    text_prob: float = 0.5  # use the caption embedding as text token (when there is one)
    weight_min: float = 0.5
    weight_max: float = 1.5
    loss_on_padding: bool = False  # False: padded frames are masked out of the training loss
    time_budget_seconds: float | None = 1020.0  # stop early (and say so) after 17 minutes
    seed: int = 0
    device: str = "auto"  # "auto" = CUDA when available

    def __post_init__(self) -> None:
        _require(self.steps >= 1 and self.batch_size >= 1, "steps and batch_size must be >= 1")
        _require(self.learning_rate > 0 and self.weight_decay >= 0, "bad learning rate/decay")
        _require(self.warmup_steps >= 0 and self.grad_clip > 0, "bad warmup_steps/grad_clip")
        _require(0 <= self.ema_decay < 1, "ema_decay must be in [0, 1)")
        _require(self.min_crop_seconds > 0, "min_crop_seconds must be > 0")
        _require(0 <= self.second_reference_prob <= 1, "second_reference_prob must be in [0, 1]")
        _require(0 <= self.track_reference_prob <= 1, "track_reference_prob must be in [0, 1]")
        _require(0 <= self.text_prob <= 1, "text_prob must be in [0, 1]")
        _require(0 <= self.weight_min <= self.weight_max, "need 0 <= weight_min <= weight_max")
        _require(self.device in ("auto", "cpu") or self.device.startswith("cuda"), "bad device")
        budget = self.time_budget_seconds
        _require(budget is None or budget > 0, "time_budget_seconds must be > 0 or None")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        return _build(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def tiny(cls, **overrides: Any) -> TrainConfig:
        """For tests: a few hundred small steps on CPU."""
        values: dict[str, Any] = dict(
            steps=150, batch_size=8, learning_rate=3e-3, warmup_steps=10, ema_decay=0.9,
            min_crop_seconds=0.5, time_budget_seconds=None, device="cpu",
        )  # fmt: skip
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything needed to rebuild a generator: mel, DiT, sampler and the normalisation stats.

    `mel_mean` (one value per mel bin) and `mel_std` (one value) are fitted on the training data
    by `train_generator`; the model sees (logmel - mean) / std.
    """

    mel: MelConfig = field(default_factory=MelConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    mel_mean: tuple[float, ...] | None = None  # None: not fitted yet (DEFAULT_MEAN per bin)
    mel_std: float | None = None  # None: not fitted yet (DEFAULT_STD)

    DEFAULT_MEAN = -5.0
    DEFAULT_STD = 2.5

    def __post_init__(self) -> None:
        if self.mel_mean is not None:
            _require(len(self.mel_mean) == self.mel.n_mels, "mel_mean needs one value per mel bin")
            _require(all(math.isfinite(v) for v in self.mel_mean), "mel_mean must be finite")
        if self.mel_std is not None:
            _require(math.isfinite(self.mel_std) and self.mel_std > 0, "mel_std must be > 0")

    def stats(self) -> tuple[list[float], float]:
        mean = list(self.mel_mean) if self.mel_mean is not None else None
        std = self.mel_std if self.mel_std is not None else self.DEFAULT_STD
        return (mean or [self.DEFAULT_MEAN] * self.mel.n_mels), std

    def with_stats(self, mean: list[float], std: float) -> GeneratorConfig:
        return replace(self, mel_mean=tuple(float(v) for v in mean), mel_std=float(std))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GeneratorConfig:
        if not isinstance(values, Mapping):
            raise GeneratorError(f"GeneratorConfig expects a mapping, got {type(values).__name__}")
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise GeneratorError(f"unknown GeneratorConfig keys: {sorted(unknown)}")
        values = dict(values)
        for key, part in (("mel", MelConfig), ("dit", DiTConfig), ("sampler", SamplerConfig)):
            if key in values:
                values[key] = part.from_dict(values[key])
        if values.get("mel_mean") is not None:
            values["mel_mean"] = tuple(float(v) for v in values["mel_mean"])
        try:
            return cls(**values)
        except TypeError as exc:
            raise GeneratorError(f"bad GeneratorConfig: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return {
            "mel": self.mel.to_dict(),
            "dit": self.dit.to_dict(),
            "sampler": self.sampler.to_dict(),
            "mel_mean": list(self.mel_mean) if self.mel_mean is not None else None,
            "mel_std": self.mel_std,
        }

    @classmethod
    def tiny(cls) -> GeneratorConfig:
        """For tests: 16 kHz, 40 mel bins, a 2-block 32-wide DiT, outputs up to 2 s."""
        return cls(
            mel=MelConfig(
                sample_rate=16_000, n_fft=512, hop_length=128, n_mels=40, fmax=8_000.0,
                inverse_iters=4, griffin_lim_iters=8,
            ),
            dit=DiTConfig(
                dim=32, depth=2, heads=2, ff_mult=2, patch_frames=4, max_seconds=2.0,
                max_references=4, timestep_features=32,
            ),
            sampler=SamplerConfig(
                steps=8, cfg_scale=2.0, strength=0.6, max_output_seconds=6.0,
                continuation_overlap_seconds=0.5, guidance_interval=(0.0, 1.0),
            ),
        )  # fmt: skip
