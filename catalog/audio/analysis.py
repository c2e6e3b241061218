"""Everything the importer learns from one audio file, computed without touching the database,
so it can run in worker processes. Plain module."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog.audio.decoding import AudioProbe, file_sha256, load_excerpt, probe_and_verify
from catalog.audio.descriptors import AudioDescriptors, TagRules, describe
from catalog.audio.tags import AudioTags, read_tags

ANALYSIS_SAMPLE_RATE = 22_050


@dataclass(frozen=True)
class AudioAnalysis:
    path: Path
    sha256: str
    probe: AudioProbe
    tags: AudioTags
    descriptors: AudioDescriptors


def analyse_file(
    path: Path, *, analysis_seconds: float = 60.0, rules: TagRules | None = None
) -> AudioAnalysis:
    """Verify, fingerprint and describe one file. Raises `AudioDecodeError` for bad audio."""
    path = Path(path)
    probe = probe_and_verify(path)
    excerpt = load_excerpt(
        path, seconds=analysis_seconds, sample_rate=ANALYSIS_SAMPLE_RATE, probe=probe
    )
    return AudioAnalysis(
        path=path,
        sha256=file_sha256(path),
        probe=probe,
        tags=read_tags(path),
        descriptors=describe(excerpt, ANALYSIS_SAMPLE_RATE, rules),
    )


def compile_analysis_kernels() -> None:
    """Run the descriptors once on a synthetic signal in this process, so its numba kernels
    are compiled (or loaded from the cache) before real work (see `analysis_workers`)."""
    t = np.arange(2 * ANALYSIS_SAMPLE_RATE) / ANALYSIS_SAMPLE_RATE
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
    noise = np.random.default_rng(0).normal(scale=0.01, size=t.shape)
    describe((0.3 * chord + noise).astype(np.float32), ANALYSIS_SAMPLE_RATE)


def analyse_file_or_error(args: tuple[Path, float]) -> AudioAnalysis | Exception:
    """`analyse_file` for process pools: returns the error instead of raising it, so one bad
    file is reported by name and the rest of the batch goes on."""
    path, seconds = args
    try:
        return analyse_file(path, analysis_seconds=seconds)
    except Exception as exc:
        return exc
