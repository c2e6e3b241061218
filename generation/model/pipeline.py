"""A trained generator and the request it serves.

`GenerationSpec` is what a generation request becomes once references are resolved to CLAP
embeddings: references (embedding, role, weight), seconds, seed, an optional text-prompt
embedding, and for the audio level an init audio (SDEdit) or, for the temporal level, a segment
of it to regenerate (inpainting). `Generator.generate` validates it and returns audio.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from generation.model.audio import MelFrontend
from generation.model.conditioning import Conditioning
from generation.model.config import GeneratorConfig, GeneratorError
from generation.model.diffusion import sample
from generation.model.dit import DiffusionTransformer

PEAK = 10 ** (-1 / 20)  # -1 dBFS
CROSSFADE_SECONDS = 0.02  # at the edges of an inpainted segment


def pick_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class ReferenceCondition:
    embedding: np.ndarray  # (512,) CLAP embedding of the reference (window or track mean)
    role: str  # one of the generator's roles
    weight: float


@dataclass(frozen=True)
class GenerationSpec:
    references: list[ReferenceCondition]
    seconds: float  # output length; ignored with init_audio (the output then has its length)
    seed: int
    text_embedding: np.ndarray | None = None  # (512,) CLAP text embedding of a prompt
    steps: int | None = None  # None: the generator's sampler default
    cfg_scale: float | None = None
    init_audio: np.ndarray | None = None  # mono float32 at the generator's sample rate
    strength: float | None = None  # SDEdit noise level; inpainting defaults to 1
    inpaint: tuple[float, float] | None = None  # (start, end) seconds inside init_audio


def continuation_windows(total_frames: int, config: GeneratorConfig) -> list[tuple[int, int]]:
    """(start frame, frames) of the windows a long output is sampled in: the model's context
    long, each starting `continuation_overlap_seconds` before the end of the one before (the
    last one shorter). One window when the output fits the context."""
    window = config.mel.frames_for(config.dit.max_seconds)
    if total_frames <= window:
        return [(0, total_frames)]
    # at most half the context, so every window adds new frames whatever the settings
    overlap = min(config.mel.frames_for(config.sampler.continuation_overlap_seconds), window // 2)
    windows, start = [], 0
    while True:
        length = min(window, total_frames - start)
        windows.append((start, length))
        if start + length >= total_frames:
            return windows
        start += window - overlap


@dataclass
class _Plan:
    """A validated spec, ready to sample."""

    cond: Conditioning
    samples: int
    frames: int
    steps: int
    cfg_scale: float
    strength: float
    init_audio: np.ndarray | None = None
    region: tuple[int, int] | None = None  # inpainted samples [start, end)
    keep: torch.Tensor | None = None  # (1, T) bool frames kept from the init
    pieces: dict[str, Any] | None = None  # what `window_conditioning` rebuilds cond from

    def window_conditioning(self, start_seconds: float, seconds: float) -> Conditioning:
        """The conditioning of one window of a long output (its own timing)."""
        return Conditioning.build(**self.pieces, seconds_start=start_seconds, seconds_total=seconds)


class Generator:
    """Model + mel front end + config, on one device. What training returns and what is served."""

    def __init__(
        self,
        model: DiffusionTransformer,
        config: GeneratorConfig,
        device: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.device = device or pick_device()
        self.model = model.to(self.device).eval()
        self.frontend = MelFrontend(config.mel)
        self.metadata = metadata or {}
        mean, std = config.stats()
        self._mean = torch.tensor(mean, dtype=torch.float32)[:, None]  # (M, 1)
        self._std = float(std)

    @property
    def sample_rate(self) -> int:
        return self.config.mel.sample_rate

    @property
    def max_seconds(self) -> float:
        return self.config.dit.max_seconds

    @property
    def max_output_seconds(self) -> float:
        """Longest output: longer than the context by windowed continuation."""
        return max(self.config.sampler.max_output_seconds, self.config.dit.max_seconds)

    @property
    def roles(self) -> tuple[str, ...]:
        return self.config.dit.roles

    # -- normalisation -----------------------------------------------------------------------

    def normalise(self, logmel: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(M, T) log-mel -> (M, T) model space."""
        mel = torch.as_tensor(np.asarray(logmel, dtype=np.float32))
        return (mel - self._mean) / self._std

    def denormalise(self, x: torch.Tensor) -> np.ndarray:
        """(M, T) model space -> (M, T) log-mel, clamped to [log floor, 5]."""
        mel = x.detach().float().cpu() * self._std + self._mean
        low = math.log(self.config.mel.log_floor)
        return mel.clamp(low, 5.0).numpy()

    # -- requests ----------------------------------------------------------------------------

    def _plan(self, spec: GenerationSpec) -> _Plan:
        c = self.config
        refs = list(spec.references)
        if len(refs) > c.dit.max_references:
            raise GeneratorError(
                f"{len(refs)} references; this generator takes at most {c.dit.max_references}"
            )
        roles, weights, embeddings = [], [], []
        for i, ref in enumerate(refs):
            if ref.role not in c.dit.roles:
                known = ", ".join(c.dit.roles)
                raise GeneratorError(f"reference {i}: unknown role {ref.role!r}; known: {known}")
            weight = float(ref.weight)
            if not math.isfinite(weight) or weight < 0:
                raise GeneratorError(f"reference {i}: weight must be finite and >= 0, got {weight}")
            embedding = np.asarray(ref.embedding, dtype=np.float32)
            if embedding.shape != (c.dit.cond_dim,):
                raise GeneratorError(
                    f"reference {i}: embedding must have shape ({c.dit.cond_dim},), "
                    f"got {embedding.shape}"
                )
            if not np.all(np.isfinite(embedding)) or not np.any(embedding):
                raise GeneratorError(f"reference {i}: embedding must be finite and non-zero")
            roles.append(c.dit.roles.index(ref.role))
            weights.append(weight)
            embeddings.append(embedding)
        if refs and sum(weights) <= 0:
            raise GeneratorError("reference weights are all zero")
        text = spec.text_embedding
        if text is not None:
            text = np.asarray(text, dtype=np.float32)
            if text.shape != (c.dit.cond_dim,):
                raise GeneratorError(f"text embedding must have shape ({c.dit.cond_dim},)")
            if not np.all(np.isfinite(text)) or not np.any(text):
                raise GeneratorError("text embedding must be finite and non-zero")

        if not isinstance(spec.seed, int | np.integer) or not 0 <= int(spec.seed) < 2**63:
            raise GeneratorError(f"seed must be an integer in [0, 2**63), got {spec.seed!r}")
        steps = c.sampler.steps if spec.steps is None else int(spec.steps)
        if not 1 <= steps <= 1000:
            raise GeneratorError(f"steps must be in [1, 1000], got {steps}")
        cfg = c.sampler.cfg_scale if spec.cfg_scale is None else float(spec.cfg_scale)
        if not math.isfinite(cfg) or cfg < 0:
            raise GeneratorError(f"cfg_scale must be finite and >= 0, got {cfg}")

        init = None
        if spec.init_audio is not None:
            init = np.asarray(spec.init_audio, dtype=np.float32)
            if init.ndim != 1 or init.size < c.mel.hop_length:
                raise GeneratorError(f"init_audio must be mono (samples,), got {init.shape}")
            if not np.all(np.isfinite(init)):
                raise GeneratorError("init_audio contains NaN or infinite samples")
            seconds = init.size / self.sample_rate
            if seconds > self.max_seconds + 1e-6:
                raise GeneratorError(
                    f"init_audio is {seconds:.2f} s; at most {self.max_seconds:g} s"
                )
            samples = init.size
        else:
            seconds = float(spec.seconds)
            longest = self.max_output_seconds
            if not (math.isfinite(seconds) and 0 < seconds <= longest):
                raise GeneratorError(f"seconds must be in (0, {longest:g}], got {seconds}")
            samples = max(c.mel.hop_length, c.mel.samples_for(seconds))
        frames = c.mel.frames_for_samples(samples)

        strength = 1.0
        region, keep = None, None
        if spec.inpaint is not None:
            if init is None:
                raise GeneratorError("inpainting needs init_audio")
            start, end = (float(v) for v in spec.inpaint)
            if not (0 <= start < end <= seconds + 1e-6):
                raise GeneratorError(
                    f"inpaint region ({start:g}, {end:g}) s must lie inside the "
                    f"{seconds:.2f} s of init audio"
                )
            rate = self.sample_rate
            region = (int(round(start * rate)), min(samples, int(round(end * rate))))
            hop = c.mel.hop_length
            first, last = region[0] // hop, min(frames, -(-region[1] // hop) + 1)
            keep = torch.ones(1, frames, dtype=torch.bool)
            keep[:, first:last] = False
        if spec.strength is not None:
            strength = float(spec.strength)
        elif init is not None and region is None:
            strength = c.sampler.strength
        if not (math.isfinite(strength) and 0 < strength <= 1):
            raise GeneratorError(f"strength must be in (0, 1], got {strength}")
        if spec.strength is not None and init is None:
            raise GeneratorError("strength applies to init_audio (SDEdit or inpainting)")

        pieces = dict(
            embeddings=np.stack(embeddings) if embeddings else None, roles=roles,
            weights=weights, text=text, cond_dim=c.dit.cond_dim,
        )  # fmt: skip
        cond = Conditioning.build(
            **pieces, seconds_start=0.0, seconds_total=samples / self.sample_rate
        )
        return _Plan(cond, samples, frames, steps, cfg, strength, init, region, keep, pieces)

    def validate(self, spec: GenerationSpec) -> None:
        """Raise GeneratorError if `spec` cannot be generated."""
        self._plan(spec)

    def generate_mel(
        self, spec: GenerationSpec, progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """The sampled log-mel (M, T) of `spec` (what `generate` renders to audio)."""
        return self._sample(self._plan(spec), spec.seed, progress)

    def _sample(self, plan: _Plan, seed: int, progress) -> np.ndarray:
        windows = continuation_windows(plan.frames, self.config)
        if len(windows) > 1:
            return self._sample_continued(plan, windows, seed, progress)
        init = None
        if plan.init_audio is not None:
            init = self.normalise(self.frontend.logmel(plan.init_audio))[None].to(self.device)
        generator = torch.Generator().manual_seed(int(seed))
        x = sample(
            self.model, plan.cond.to(self.device), (1, self.config.mel.n_mels, plan.frames),
            steps=plan.steps, cfg_scale=plan.cfg_scale, generator=generator, init=init,
            strength=plan.strength, keep=plan.keep, progress=progress,
            guidance_interval=self.config.sampler.guidance_interval,
        )  # fmt: skip
        return self.denormalise(x[0])

    def _sample_continued(
        self, plan: _Plan, windows: list[tuple[int, int]], seed: int, progress
    ) -> np.ndarray:
        """A long output, window by window: each window after the first keeps the overlap
        with what came before exactly (inpainting) and samples the rest, with its own timing
        conditioning and its own seed (seed + window index)."""
        c = self.config
        fps = c.mel.frames_per_second
        x = torch.zeros(1, c.mel.n_mels, plan.frames)
        total_steps = plan.steps * len(windows)
        for index, (start, length) in enumerate(windows):
            keep, init = None, None
            if index:
                overlap = windows[index - 1][0] + windows[index - 1][1] - start
                init = torch.zeros(1, c.mel.n_mels, length)
                init[..., :overlap] = x[..., start : start + overlap]
                keep = torch.zeros(1, length, dtype=torch.bool)
                keep[:, :overlap] = True
                init = init.to(self.device)

            def step(done: int, _total: int, index: int = index) -> None:
                if progress is not None:
                    progress(index * plan.steps + done, total_steps)

            cond = plan.window_conditioning(start / fps, length / fps)
            generator = torch.Generator().manual_seed(int(seed) + index)
            part = sample(
                self.model, cond.to(self.device), (1, c.mel.n_mels, length), steps=plan.steps,
                cfg_scale=plan.cfg_scale, generator=generator, init=init, strength=1.0,
                keep=keep, progress=step, guidance_interval=c.sampler.guidance_interval,
            )  # fmt: skip
            x[..., start : start + length] = part.cpu()
        return self.denormalise(x[0])

    def render(self, logmel: np.ndarray, spec: GenerationSpec) -> np.ndarray:
        """Audio of a log-mel sampled for `spec` (`generate` = `generate_mel` + `render`)."""
        return self._render(logmel, self._plan(spec), spec.seed)

    def _render(self, logmel: np.ndarray, plan: _Plan, seed: int) -> np.ndarray:
        phase_from = plan.init_audio if plan.region is not None else None
        audio = self.frontend.to_audio(
            logmel, plan.samples, seed=int(seed) % 2**31, init_audio=phase_from,
            device=self.device,
        )  # fmt: skip
        audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
        if plan.region is not None:  # keep the original outside the regenerated segment
            start, end = plan.region
            peak = float(np.max(np.abs(audio[start:end])))
            if peak > PEAK:  # limit the new segment only: the original keeps its level
                audio = audio * (PEAK / peak)
            audio = _splice(plan.init_audio, audio, plan.region, self.sample_rate)
            return np.clip(audio, -1.0, 1.0).astype(np.float32)
        peak = float(np.max(np.abs(audio)))
        if peak < 1e-9:
            return np.zeros_like(audio, dtype=np.float32)
        return (audio * (PEAK / peak)).astype(np.float32)

    def generate(
        self, spec: GenerationSpec, progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """Float32 mono audio in [-1, 1] at `sample_rate`.

        Text-to-music and SDEdit outputs are peak-normalised to -1 dBFS. Inpainting returns the
        init audio unchanged outside the region (crossfaded over 20 ms inside it); the new
        segment keeps the level its mel implies, limited to -1 dBFS peak.
        """
        plan = self._plan(spec)
        return self._render(self._sample(plan, spec.seed, progress), plan, spec.seed)


def _splice(
    original: np.ndarray, generated: np.ndarray, region: tuple[int, int], sample_rate: int
) -> np.ndarray:
    """`original` with samples [start, end) from `generated`, with linear crossfades inside."""
    start, end = region
    fade = max(1, min(int(CROSSFADE_SECONDS * sample_rate), (end - start) // 4))
    gain = np.zeros(len(original), dtype=np.float32)
    gain[start:end] = 1.0
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
    gain[start : start + fade] = ramp
    gain[end - fade : end] = np.minimum(gain[end - fade : end], ramp[::-1])
    return (1 - gain) * original + gain * generated
