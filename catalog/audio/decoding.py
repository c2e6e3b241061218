"""Decode and verify audio files. Plain module: no Django imports.

A file is accepted only if libsndfile decodes every frame it declares: a truncated or
corrupt file is rejected here, before anything is stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SUPPORTED_SUFFIXES = frozenset({".ogg", ".oga", ".opus", ".flac", ".wav", ".mp3"})
# Decoders may stop a few frames short of the declared length at the very end of a stream.
_MIN_DECODED_FRACTION = 0.995
_BLOCK_FRAMES = 1 << 16
_OGG_TAIL_BYTES = 1 << 16
# Mean power below 1e-6 (RMS under -60 dBFS) over the whole file: nothing to hear.
_SILENCE_MEAN_POWER = 1e-6  # an Ogg page is at most 65,307 bytes


class AudioDecodeError(ValueError):
    """The file is not audio we can decode completely."""


@dataclass(frozen=True)
class AudioProbe:
    audio_format: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_seconds(self) -> float:
        return self.frames / self.sample_rate


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def audio_format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise AudioDecodeError(
            f"unsupported file type '{suffix or '(none)'}'; "
            f"expected one of {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    return {".oga": "ogg"}.get(suffix, suffix[1:])


def _verify_ogg_complete(path: Path) -> None:
    """An Ogg stream that was cut off lacks the end-of-stream flag on its last page, and
    libsndfile decodes it without complaint, so check the container itself."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(max(0, size - _OGG_TAIL_BYTES))
        tail = handle.read()
    last = tail.rfind(b"OggS")
    if last < 0 or len(tail) - last < 27:
        raise AudioDecodeError("file is truncated: no complete Ogg page at the end")
    header_type = tail[last + 5]
    segment_count = tail[last + 26]
    header_end = last + 27 + segment_count
    if header_end > len(tail):
        raise AudioDecodeError("file is truncated: last Ogg page header is incomplete")
    body = sum(tail[last + 27 : header_end])
    if header_end + body > len(tail) or not header_type & 0x04:
        raise AudioDecodeError("file is truncated: Ogg stream has no end-of-stream page")


def probe_and_verify(path: Path) -> AudioProbe:
    """Decode the whole file block by block; raise `AudioDecodeError` unless it is complete."""
    path = Path(path)
    audio_format = audio_format_of(path)
    try:
        if audio_format in {"ogg", "opus"}:
            _verify_ogg_complete(path)
        info = sf.info(str(path))
        decoded, energy = 0, 0.0
        with sf.SoundFile(str(path)) as stream:
            for block in stream.blocks(blocksize=_BLOCK_FRAMES, dtype="float32", always_2d=True):
                if not np.isfinite(block).all():
                    raise AudioDecodeError("decoded samples contain NaN or infinity")
                decoded += len(block)
                energy += float(np.square(block, dtype=np.float64).sum())
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:  # noqa: B014
        raise AudioDecodeError(f"cannot decode audio: {exc}") from exc
    if decoded == 0 or info.samplerate <= 0:
        raise AudioDecodeError("file contains no audio frames")
    if decoded and energy / (decoded * info.channels) < _SILENCE_MEAN_POWER:
        raise AudioDecodeError("file contains only silence")
    if info.frames > 0 and decoded < _MIN_DECODED_FRACTION * info.frames:
        raise AudioDecodeError(
            f"file is truncated: decoded {decoded} of {info.frames} declared frames"
        )
    return AudioProbe(
        audio_format=audio_format,
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=decoded,
    )


def load_excerpt(path: Path, *, seconds: float, sample_rate: int, probe: AudioProbe) -> np.ndarray:
    """Mono excerpt of up to `seconds` from the middle of the recording, resampled."""
    import librosa

    excerpt_frames = min(probe.frames, int(seconds * probe.sample_rate))
    start = max(0, (probe.frames - excerpt_frames) // 2)
    samples, native_rate = sf.read(
        str(path), start=start, frames=excerpt_frames, dtype="float32", always_2d=True
    )
    mono = samples.mean(axis=1)
    if native_rate != sample_rate:
        mono = librosa.resample(mono, orig_sr=native_rate, target_sr=sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def load_mono(path: Path, *, sample_rate: int) -> np.ndarray:
    """The whole recording as mono float32 at `sample_rate` (for embedding and training)."""
    import librosa

    try:
        samples, native_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:  # noqa: B014
        raise AudioDecodeError(f"cannot decode audio: {exc}") from exc
    mono = samples.mean(axis=1)
    if native_rate != sample_rate:
        mono = librosa.resample(mono, orig_sr=native_rate, target_sr=sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)
