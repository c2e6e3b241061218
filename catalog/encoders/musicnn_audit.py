"""musicnn's pretrained taggers as an audio-only encoder, for the similarity audit (issue 18).

The project's own encoder was trained on a few hundred catalogue windows; musicnn's networks
learned on MagnaTagATune or the Million Song Dataset, and a small test found them far more
robust to pitch shifts and time stretches. They have no text tower, so they serve the audit's
3-s clips (`AUDIT_ENCODER`) and never retrieval: `embed_texts` refuses, and the catalogue's
services refuse to activate an `audio_only` encoder for retrieval.

The "checkpoint" is a small JSON card naming the network and layer; the weights come from the
installed musicnn wheel (`catalog/encoders/musicnn.py` reads its TF checkpoints). The version
is a digest of the card and of those weight files, so a different wheel is another version.
Each clip is cut into 2.992-s patches (one for a 3-s clip), embedded, averaged, zero-padded
from the layer's width to the platform's 512 dimensions (cosines are unchanged) and
L2-normalised. Plain module: no Django imports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from catalog.encoders import EMBEDDING_DIM, EncoderError, register_encoder
from catalog.encoders.audio_only import (
    AudioOnlyEncoder,
    audio_rows,
    card_digest,
    read_card,
    unit_rows,
)
from catalog.encoders.musicnn import (
    LAYERS,
    MODELS,
    SAMPLE_RATE,
    load_network,
    log_mel,
    musicnn_package_dir,
    patches,
)

NAME = "musicnn"
LAYER_WIDTH = {("musicnn", "penultimate"): 200, ("musicnn", "max_pool"): 753,
               ("musicnn", "mean_pool"): 753, ("vgg", "penultimate"): 256}  # fmt: skip


class MusicnnAuditEncoder(AudioOnlyEncoder):
    """An `AudioTextEncoder` for audio only: clips in, 512-d unit vectors out."""

    name = NAME
    sample_rate = SAMPLE_RATE
    window_seconds = 3.0  # the audit's clip length; a clip holds one 2.992-s patch

    def __init__(self, model: str, layer: str, package_dir: Path, version: str) -> None:
        self.config = MODELS[model]
        self.layer = layer
        self.package_dir = package_dir
        self.version = version

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        per_window = [patches(log_mel(window, SAMPLE_RATE)) for window in audio_rows(windows)]
        network = load_network(self.config, self.package_dir)
        with torch.inference_mode():
            rows = [
                network(torch.from_numpy(batch))[self.layer].float().mean(dim=0).numpy()
                for batch in per_window
            ]
        return unit_rows(rows, NAME)


def model_and_layer(path: Path) -> tuple[str, str]:
    """(model, layer) of a card such as `{"model": "MTT_musicnn", "layer": "penultimate"}`."""
    card = read_card(path, NAME)
    model, layer = card.get("model"), card.get("layer", "penultimate")
    if model not in MODELS:
        raise EncoderError(f"unknown musicnn model {model!r}; known: {', '.join(MODELS)}")
    if layer not in LAYERS[MODELS[model].architecture]:
        known = ", ".join(LAYERS[MODELS[model].architecture])
        raise EncoderError(f"unknown layer {layer!r} for {model}; known: {known}")
    if LAYER_WIDTH[(MODELS[model].architecture, layer)] > EMBEDDING_DIM:
        raise EncoderError(f"layer {layer} of {model} is wider than {EMBEDDING_DIM}")
    return model, layer


@register_encoder(NAME)
def load(path: Path) -> MusicnnAuditEncoder:
    model, layer = model_and_layer(path)
    package_dir = musicnn_package_dir()
    weights = sorted((package_dir / model).glob("*"))
    if not weights:
        raise EncoderError(f"musicnn weights of {model} not found in {package_dir}")
    version = f"{model}-{layer}-{card_digest(path, weights)}"
    return MusicnnAuditEncoder(model, layer, package_dir, version)
