"""Augmented views of training windows: the positive pairs that make the encoder robust.

The similarity audit must find a recording again after a pitch shift, a tempo change, added
noise or a splice with other music (seed 003 section 5.1), so the audio-audio term of the
encoder's loss pairs a clean crop with a crop of the same recording changed in those ways:

- speed: the recording resampled by 2^(k/12) for k in +-1..+-`max_semitones` (pitch and tempo
  move together, as when a record is played faster); computed once per recording, as log-mels;
- stretch: the crop's frames resampled in time by U(1-s, 1+s) (tempo alone; combined with
  speed this also gives pitch alone);
- noise: white noise U(noise_db_min, noise_db_max) dB relative to the crop's power, added in
  the mel power domain (the log-mel of white noise through the same filter bank, scaled);
- splice: 5-35% of the window replaced by another recording's frames, at either end (a
  mash-up as the audit's study makes them).

Everything works on the tower's dB log-mels (T, M) so a training step costs no audio work.
Plain module: no Django imports; torch imported by the caller.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from catalog.encoders import EncoderError


@dataclass(frozen=True)
class AugmentSettings:
    probability: float = 0.8  # share of second views that are augmented at all
    max_semitones: int = 2  # speed variants at +-1..+-max_semitones; 0: none
    stretch: float = 0.15  # time stretch U(1 - stretch, 1 + stretch)
    noise_probability: float = 0.5
    noise_db_min: float = -30.0
    noise_db_max: float = -6.0
    splice_probability: float = 0.3

    def __post_init__(self) -> None:
        for name in ("probability", "noise_probability", "splice_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise EncoderError(f"augment {name} must be in [0, 1]")
        if self.max_semitones < 0 or not 0 <= self.stretch < 0.5:
            raise EncoderError("augment max_semitones must be >= 0 and stretch in [0, 0.5)")
        if self.noise_db_min > self.noise_db_max:
            raise EncoderError("augment noise_db_min must not exceed noise_db_max")

    @property
    def speed_factors(self) -> tuple[float, ...]:
        """Playback-speed factors of the precomputed variants (> 1: higher and faster)."""
        steps = [k for k in range(-self.max_semitones, self.max_semitones + 1) if k]
        return tuple(2 ** (k / 12) for k in steps)


def speed_variant(audio: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """The audio played `factor` times as fast (pitch up by 12*log2(factor) semitones)."""
    import librosa

    if factor <= 0:
        raise EncoderError(f"a speed factor must be positive, not {factor}")
    audio = np.asarray(audio, dtype=np.float32)
    target = int(round(sample_rate / factor))
    return librosa.resample(audio, orig_sr=sample_rate, target_sr=target).astype(np.float32)


def _power(mel_db):
    return 10.0 ** (mel_db / 10.0)


def _to_db(power, top_db: float):
    import torch

    mel = 10.0 * torch.log10(power.clamp_min(1e-10))
    return torch.maximum(mel, mel.max() - top_db)


def stretch_crop(mel, end: int, frames: int, factor: float, rng: random.Random):
    """`frames` frames resampled from round(frames * factor) source frames ending before `end`
    (factor > 1: the music plays faster), or None when the recording is too short for it."""
    import torch

    source = int(round(frames * factor))
    if end < source:
        return None
    start = rng.randrange(0, end - source + 1)
    window = mel[start : start + source].T.unsqueeze(0)  # (1, M, source)
    resized = torch.nn.functional.interpolate(window, size=frames, mode="linear")
    return resized[0].T.contiguous()


def add_noise(crop, noise_mel, level_db: float, top_db: float):
    """The crop with white noise `level_db` dB relative to its own mel power (noise_mel: the
    log-mel of unit white noise through the same front end, at least as long as the crop)."""
    signal = _power(crop)
    noise = _power(noise_mel[: len(crop)])
    scale = signal.sum() / noise.sum().clamp_min(1e-10) * 10 ** (level_db / 10)
    return _to_db(signal + scale * noise, top_db)


def splice(crop, other, fraction: float, at_start: bool):
    """`fraction` of the crop's frames replaced by the same frames of `other`."""
    cut = int(round(fraction * len(crop)))
    if cut <= 0:
        return crop
    out = crop.clone()
    if at_start:
        out[:cut] = other[:cut]
    else:
        out[-cut:] = other[-cut:]
    return out
