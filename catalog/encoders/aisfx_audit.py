"""aiSFX's pretrained sound embedding as an audio-only encoder for the similarity audit.

aisfx 0.1.2 (Ma, Tasaka & Jensen, ISMIR 2022; weights CC BY 4.0, credited in
docs/similarity-audit.md) ships a 9-layer CNN trained across nine sound-effect libraries whose
512-d max-pooled features transfer to music; in a small test it was the most robust of the
candidates to pitch shifts and time stretches. Like musicnn it has no text tower: it serves
the audit's clips (`AUDIT_ENCODER`), never retrieval.

The network is ported here (same layers as `aisfx.models.cnn2d.EmbeddingNet`, a test checks
the outputs match) and reads the wheel's `models/checkpoint.pth` with `weights_only=True` plus
an allowlist of numpy's scalar types, instead of the unrestricted unpickling the wheel's own
loader does. The input follows the package's librosa path: peak-normalised 44.1-kHz audio, 96
HTK mel bins from a 2048-sample window at hop 1024, log10(1 + 10^4 x power), divided by the
training maximum 9.4578, as (frames, mels). A clip is cut into the 100-frame (2.3-s) blocks
the model was trained on, at hop 50 with the last block flush with the clip's end; the block
embeddings are averaged and L2-normalised. Plain module: no Django imports.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from catalog.encoders import EncoderError, register_encoder
from catalog.encoders.audio_only import (
    AudioOnlyEncoder,
    audio_rows,
    card_digest,
    installed_package_dir,
    read_card,
    unit_rows,
)

NAME = "aisfx"
SAMPLE_RATE = 44_100
N_FFT, HOP = 2048, 1024
MEL_BINS = 96
LOG_MEL_MAX = 9.457798957824707  # the package's "original" min-max normalisation
BLOCK_FRAMES, BLOCK_HOP = 100, 50
MIN_SECONDS = (BLOCK_FRAMES - 1) * HOP / SAMPLE_RATE  # one full block: 2.3 s


class _ConvBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.bn2 = nn.BatchNorm2d(channels_out)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.max_pool2d(x, kernel_size=pool)


class AisfxNetwork(nn.Module):
    """(batch, frames, mels) log-mel blocks -> (batch, 512): mean over mel bins, max over time."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_block1 = _ConvBlock(1, 64)
        self.conv_block2 = _ConvBlock(64, 128)
        self.conv_block3 = _ConvBlock(128, 256)
        self.conv_block4 = _ConvBlock(256, 512)

    def forward(self, blocks: torch.Tensor) -> torch.Tensor:
        x = blocks.unsqueeze(1)
        for block, pool in ((self.conv_block1, (2, 2)), (self.conv_block2, (2, 2)),
                            (self.conv_block3, (2, 2)), (self.conv_block4, (1, 1))):  # fmt: skip
            x = block(x, pool)
        return x.mean(dim=3).max(dim=2).values


def aisfx_checkpoint() -> Path:
    package = installed_package_dir(
        "aisfx",
        "`make install` installs aisfx==0.1.2 (without its dependencies: its metadata pins "
        "librosa 0.9.2 and numpy 1.23)",
    )
    path = package / "models" / "checkpoint.pth"
    if not path.is_file():
        raise EncoderError(f"aisfx's checkpoint is missing: {path}")
    return path


def _numpy_scalar_types() -> list:
    # the checkpoint pickles numpy scalars; allow exactly those, nothing else
    from numpy.core import multiarray

    return [multiarray.scalar, np.dtype, *{type(np.dtype(t)) for t in ("f4", "f8", "i8")}]


@lru_cache(maxsize=2)
def load_network(checkpoint: Path) -> AisfxNetwork:
    try:
        with torch.serialization.safe_globals(_numpy_scalar_types()):
            weights, _datasets = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged or foreign file: say which
        raise EncoderError(f"cannot read aisfx checkpoint {checkpoint}: {exc}") from exc
    prefix = "embedding_net."
    state = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
    network = AisfxNetwork()
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise EncoderError(f"aisfx checkpoint does not fit the network: {exc}") from exc
    return network.eval()


def log_mel(audio: np.ndarray) -> np.ndarray:
    """(frames, 96) normalised log-mel of peak-normalised 44.1-kHz mono audio."""
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    audio = audio / peak if peak > 0 else audio
    power = librosa.feature.melspectrogram(
        y=audio, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, win_length=N_FFT, n_mels=MEL_BINS,
        fmin=0.0, fmax=SAMPLE_RATE / 2, htk=True, norm=1.0, power=2.0, pad_mode="constant",
    )  # fmt: skip
    return (np.log10(power * 10_000.0 + 1.0) / LOG_MEL_MAX).T.astype(np.float32)


def blocks(spectrogram: np.ndarray) -> np.ndarray:
    """(n, 100, 96) blocks at hop 50 frames, the last one ending at the clip's last frame."""
    frames = spectrogram.shape[0]
    if frames < BLOCK_FRAMES:
        raise EncoderError(
            f"aisfx needs at least {MIN_SECONDS:.2f} s of audio per clip "
            f"({BLOCK_FRAMES} frames), got {frames} frames"
        )
    starts = list(range(0, frames - BLOCK_FRAMES + 1, BLOCK_HOP))
    if starts[-1] != frames - BLOCK_FRAMES:
        starts.append(frames - BLOCK_FRAMES)
    return np.stack([spectrogram[s : s + BLOCK_FRAMES] for s in starts])


class AisfxAuditEncoder(AudioOnlyEncoder):
    """An `AudioTextEncoder` for audio only: clips in, 512-d unit vectors out."""

    name = NAME
    sample_rate = SAMPLE_RATE
    window_seconds = 3.0  # the audit's clip length: two overlapping blocks

    def __init__(self, checkpoint: Path, version: str) -> None:
        self.checkpoint = checkpoint
        self.version = version

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        windows = audio_rows(windows)
        network = load_network(self.checkpoint)
        with torch.inference_mode():
            rows = [
                network(torch.from_numpy(blocks(log_mel(window)))).mean(dim=0).numpy()
                for window in windows
            ]
        return unit_rows(rows, NAME)


@register_encoder(NAME)
def load(path: Path) -> AisfxAuditEncoder:
    """`path` is a card (`catalog/encoders/pretrained/aisfx.json`); the weights come from the
    installed wheel, and the version digests both."""
    read_card(path, NAME)
    checkpoint = aisfx_checkpoint()
    return AisfxAuditEncoder(checkpoint, f"aisfx-0.1.2-{card_digest(path, [checkpoint])}")
