"""Cutting audio into the fixed-length clips the audit compares (seed 003 section 3.3.1:
every file is split into 3-second clips, each embedded on its own)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from catalog.encoders import EncoderError, WindowSpec, split_windows


class AuditError(Exception):
    """The audit cannot be computed from this input (the message says why)."""


class OutputTooShort(AuditError):
    """Audio shorter than one clip has nothing to compare: refused, never padded to a score."""


@dataclass(frozen=True)
class ClipSpec:
    """Clip length and hop in seconds. A tail shorter than a clip is dropped (a padded clip
    would be mostly silence and match silence anywhere)."""

    clip_seconds: float = 3.0
    hop_seconds: float = 3.0

    def __post_init__(self) -> None:
        for name in ("clip_seconds", "hop_seconds"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not np.isfinite(value) or value <= 0:
                raise AuditError(f"{name} must be a positive number of seconds, not {value!r}")
        if self.hop_seconds > self.clip_seconds:
            raise AuditError(
                f"hop_seconds ({self.hop_seconds:g}) longer than clip_seconds "
                f"({self.clip_seconds:g}) would leave audio unaudited"
            )

    @property
    def label(self) -> str:
        return f"{self.clip_seconds:g}s/hop {self.hop_seconds:g}s"


def clip_count(seconds: float, spec: ClipSpec) -> int:
    """How many clips `seconds` of audio give (0 when shorter than one clip)."""
    if seconds + 1e-9 < spec.clip_seconds:
        return 0
    return int(np.floor((seconds - spec.clip_seconds) / spec.hop_seconds + 1e-9)) + 1


def split_clips(
    audio: np.ndarray, sample_rate: int, spec: ClipSpec
) -> list[tuple[float, np.ndarray]]:
    """(start_seconds, clip) pairs of mono audio; refuses audio shorter than one clip."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise AuditError(f"expected mono audio, got shape {audio.shape}")
    if audio.size and not np.all(np.isfinite(audio)):
        raise AuditError("audio holds NaN or infinite samples")
    size = int(round(spec.clip_seconds * sample_rate))
    if len(audio) < size:
        raise OutputTooShort(
            f"audio is {len(audio) / sample_rate:.2f} s long; the audit compares "
            f"{spec.clip_seconds:g}-s clips, so at least one full clip is needed"
        )
    window = WindowSpec(
        window_seconds=spec.clip_seconds,
        hop_seconds=spec.hop_seconds,
        min_seconds=spec.clip_seconds,
    )
    try:
        return split_windows(audio.astype(np.float32, copy=False), sample_rate, window)
    except EncoderError as exc:  # pragma: no cover - the length was checked above
        raise AuditError(str(exc)) from exc
