"""The perturbations of seed 003 section 5.1, on mono float audio.

Pitch shift and time stretch use librosa's phase vocoder (pitch shift = stretch, then
resample back to the original length), white noise is scaled relative to the clip's own RMS,
and a mash-up splices two clips (for 75/25 the first 75% is the first clip, the rest the
second), as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attribution.audit.clips import AuditError

# The settings of the paper's Figure 1.
PITCH_SEMITONES = (-12, -9, -6, -3, -1, 1, 3, 6, 9, 12)
STRETCH_FACTORS = (0.80, 0.85, 0.90, 0.95, 1.05, 1.10, 1.15, 1.20)
NOISE_DB = (-30, -24, -18, -12, -6, 0, 6, 12, 18, 24, 30)
MASHUP_FRACTIONS = (0.05, 0.20, 0.35, 0.50, 0.65, 0.80, 0.95)


def _mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise AuditError(f"expected non-empty mono audio, got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise AuditError("audio holds NaN or infinite samples")
    return audio


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(audio, dtype=np.float64)))))


def pitch_shift(audio: np.ndarray, sample_rate: int, semitones: float) -> np.ndarray:
    """Raise (positive) or lower the pitch by `semitones`, keeping the length."""
    import librosa

    audio = _mono(audio)
    if semitones == 0:
        return audio.copy()
    shifted = librosa.effects.pitch_shift(audio, sr=sample_rate, n_steps=float(semitones))
    return librosa.util.fix_length(shifted, size=len(audio)).astype(np.float32)


def time_stretch(audio: np.ndarray, factor: float) -> np.ndarray:
    """Make the audio `factor` times as long (0.8: 20% shorter, faster) at the same pitch."""
    import librosa

    audio = _mono(audio)
    if not np.isfinite(factor) or factor <= 0:
        raise AuditError(f"a stretch factor must be positive, not {factor}")
    if factor == 1:
        return audio.copy()
    stretched = librosa.effects.time_stretch(audio, rate=1.0 / factor)
    target = int(round(len(audio) * factor))
    return librosa.util.fix_length(stretched, size=target).astype(np.float32)


def add_white_noise(audio: np.ndarray, level_db: float, *, seed: int = 0) -> np.ndarray:
    """Overlay Gaussian white noise `level_db` dB relative to the clip's RMS (-30: quiet,
    +30: the noise is 30 dB louder than the music)."""
    audio = _mono(audio)
    level = rms(audio)
    if level == 0:
        raise AuditError("a silent clip has no level to set noise against")
    noise = np.random.default_rng(seed).standard_normal(len(audio))
    noise *= level * 10 ** (level_db / 20) / rms(noise)
    return (audio + noise).astype(np.float32)


def mash_up(first: np.ndarray, second: np.ndarray, first_fraction: float) -> np.ndarray:
    """The first `first_fraction` of `first`, then the rest of `second` (same length)."""
    first, second = _mono(first), _mono(second)
    if len(first) != len(second):
        raise AuditError(f"mash-up clips differ in length ({len(first)} vs {len(second)})")
    if not 0 <= first_fraction <= 1:
        raise AuditError(f"a mash-up fraction must be in [0, 1], not {first_fraction}")
    cut = int(round(first_fraction * len(first)))
    return np.concatenate([first[:cut], second[cut:]]).astype(np.float32)


@dataclass(frozen=True)
class Perturbation:
    """One setting of one perturbation kind, e.g. ("pitch", 3.0) or ("mashup_catalogue", 0.65)."""

    kind: str
    amount: float

    @property
    def label(self) -> str:
        if self.kind == "pitch":
            return f"{self.amount:+g} st"
        if self.kind == "stretch":
            return f"x{self.amount:.2f}"
        if self.kind == "noise":
            return f"{self.amount:+g} dB"
        return f"{round(self.amount * 100)}/{round((1 - self.amount) * 100)}"


def dominant_frequency(audio: np.ndarray, sample_rate: int) -> float:
    """Frequency (Hz) of the largest magnitude bin of a Hann-windowed spectrum (tests)."""
    audio = _mono(audio)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1.0 / sample_rate)[int(np.argmax(spectrum))])
