"""Audio-text encoders (CLAP-style): one small protocol, implementations registered by name.

Plain ML code without Django imports. An encoder maps mono audio windows and texts into one
joint, L2-normalised 512-d space; retrieval, conditioning and the similarity audit all use it.
Heavy libraries (torch, laion-clap, sentence encoders) are imported lazily by the loaders.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

# Hugging Face libraries hang on machines without network unless told to stay offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

EMBEDDING_DIM = 512


class EncoderError(Exception):
    """An encoder could not be built, loaded or applied (bad checkpoint, bad input)."""


@runtime_checkable
class AudioTextEncoder(Protocol):
    """What retrieval and generation need from an audio-text model."""

    name: str
    version: str
    sample_rate: int  # Hz of the mono audio `embed_audio` expects
    window_seconds: float  # length of the windows it was trained on

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        """(n, samples) float32 mono at `sample_rate` -> (n, EMBEDDING_DIM) unit vectors."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """n texts -> (n, EMBEDDING_DIM) unit vectors. An encoder without a text tower sets
        `audio_only = True` and raises `EncoderError` here; it serves the audit only."""
        ...


def is_audio_only(encoder: AudioTextEncoder) -> bool:
    return bool(getattr(encoder, "audio_only", False))


Loader = Callable[[Path], AudioTextEncoder]
_LOADERS: dict[str, Loader] = {}
# Modules that register the built-in encoders, imported only when one is asked for.
BUILTIN_ENCODERS = {
    "default-clap": "catalog.encoders.default_clap",
    "laion-clap": "catalog.encoders.laion",
    "musicnn": "catalog.encoders.musicnn_audit",  # audio only: for the similarity audit
    "aisfx": "catalog.encoders.aisfx_audit",  # audio only: for the similarity audit
    "melody": "catalog.encoders.melody",  # audio only: the audit's key-invariant melody signal
}
# The cards that register the audio-only audit encoders (relative to the repository).
MUSICNN_CARD = Path("catalog/encoders/pretrained/musicnn-mtt.json")
AISFX_CARD = Path("catalog/encoders/pretrained/aisfx.json")
MELODY_CARD = Path("catalog/encoders/pretrained/melody-basic-pitch.json")
AUDIO_ONLY_CARDS = {"musicnn": MUSICNN_CARD, "aisfx": AISFX_CARD, "melody": MELODY_CARD}


def register_encoder(name: str) -> Callable[[Loader], Loader]:
    def decorate(loader: Loader) -> Loader:
        _LOADERS[name] = loader
        return loader

    return decorate


def load_encoder(name: str, checkpoint_path: str | Path) -> AudioTextEncoder:
    """Build the encoder `name` from its checkpoint (which stores its own config)."""
    if name in BUILTIN_ENCODERS and name not in _LOADERS:
        importlib.import_module(BUILTIN_ENCODERS[name])  # registers its loader
    if name not in _LOADERS:
        known = sorted({*_LOADERS, *BUILTIN_ENCODERS})
        raise EncoderError(f"unknown encoder '{name}'; known: {', '.join(known)}")
    path = Path(checkpoint_path)
    if not path.is_file():
        raise EncoderError(f"encoder checkpoint not found: {path}")
    return _LOADERS[name](path)


@dataclass(frozen=True)
class WindowSpec:
    """How a recording is cut into windows for embedding."""

    window_seconds: float = 10.0
    hop_seconds: float = 10.0
    min_seconds: float = 2.0  # a shorter tail is dropped; a shorter recording is one padded window


def split_windows(
    audio: np.ndarray, sample_rate: int, spec: WindowSpec
) -> list[tuple[float, np.ndarray]]:
    """Cut mono audio into (start_seconds, window) pairs, zero-padding the last window."""
    size = int(round(spec.window_seconds * sample_rate))
    hop = int(round(spec.hop_seconds * sample_rate))
    if audio.ndim != 1:
        raise EncoderError(f"expected mono audio, got shape {audio.shape}")
    if len(audio) < int(spec.min_seconds * sample_rate):
        raise EncoderError(
            f"audio is {len(audio) / sample_rate:.2f} s long; at least {spec.min_seconds} s needed"
        )
    n, min_samples = len(audio), int(spec.min_seconds * sample_rate)
    if n <= size:
        starts = [0]
    else:
        starts = list(range(0, n - size + 1, hop))
        tail = starts[-1] + hop
        if n - tail >= min_samples:
            starts.append(tail)
    windows = []
    for start in starts:
        chunk = audio[start : start + size]
        if len(chunk) < size:
            chunk = np.pad(chunk, (0, size - len(chunk)))
        windows.append((start / sample_rate, chunk.astype(np.float32, copy=False)))
    return windows
