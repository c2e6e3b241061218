"""Pretrained LAION-CLAP checkpoints (laion_clap 1.1.x) behind the `AudioTextEncoder` protocol.

The real music checkpoint (`music_audioset_epoch_15_esc_90.14.pt`: HTSAT-base audio tower,
RoBERTa text tower) is a training checkpoint: `{"epoch", "state_dict": {"module.<key>": ...}}`.
It holds every weight, but laion_clap's `CLAP.__init__` still asks the Hugging Face hub for
`roberta-base`, which this platform cannot reach. We therefore build the RoBERTa *architecture*
from a local directory (config.json + tokenizer files, as `save_pretrained` writes them) and let
the checkpoint supply all text weights; the tokenizer comes from the same directory.

A `.pt` path is all `load_encoder` passes, so the model config is read from a JSON sidecar
`<checkpoint>.json` (keys of `LaionClapConfig`; a relative `text_model_dir` is resolved against
the sidecar's folder) or, without one, from LAION_CLAP_AMODEL / LAION_CLAP_TEXT_MODEL_DIR.

Audio preprocessing reproduces `laion_clap.CLAP_Module.get_audio_embedding_from_data`: 48 kHz,
an int16 quantisation round trip, then `get_audio_features` (repeat-padding short windows).
One deliberate difference: laion crops over-long non-fusion input at a random offset; we keep
the first `clip_samples` so the same audio always gets the same vector (fusion chunk choice is
seeded for the same reason).

Plain module: no Django imports; torch, transformers and laion_clap are imported on first load.
Checkpoints are unpickled (laion_clap uses `weights_only=False`): load only trusted files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from catalog.encoders import EMBEDDING_DIM, EncoderError, register_encoder

NAME = "laion-clap"
CONTEXT_LENGTH = 77  # laion_clap's CLAP_Module.tokenizer pads/truncates to this
ENV_AMODEL = "LAION_CLAP_AMODEL"
ENV_TEXT_MODEL_DIR = "LAION_CLAP_TEXT_MODEL_DIR"
POSITION_IDS_KEY = "text_branch.embeddings.position_ids"
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
_TOKENIZER_FILE_SETS = (("tokenizer.json",), ("vocab.json", "merges.txt"))

# Swapping a module global is process-wide: serialise model builds that rely on it.
_BUILD_LOCK = threading.Lock()


@dataclass(frozen=True)
class LaionClapConfig:
    """How to rebuild the network a LAION-CLAP checkpoint was trained as."""

    text_model_dir: Path  # local RoBERTa config.json + tokenizer (architecture only, no weights)
    amodel: str = "HTSAT-base"  # a laion_clap model config name (clap_module/model_configs)
    tmodel: str = "roberta"
    enable_fusion: bool = False
    device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda" or "cuda:N"

    def __post_init__(self) -> None:
        if not isinstance(self.text_model_dir, str | Path) or not str(self.text_model_dir):
            raise EncoderError(f"text_model_dir must be a path, got {self.text_model_dir!r}")
        object.__setattr__(self, "text_model_dir", Path(self.text_model_dir))
        if not isinstance(self.amodel, str) or not self.amodel:
            raise EncoderError(f"amodel must be a laion_clap model name, got {self.amodel!r}")
        if self.tmodel != "roberta":
            # bert/bart towers would need other hub downloads; only RoBERTa is wired offline.
            raise EncoderError(f"tmodel {self.tmodel!r} is not supported; only 'roberta' is")
        if not isinstance(self.enable_fusion, bool):
            raise EncoderError(f"enable_fusion must be true or false, got {self.enable_fusion!r}")
        if not isinstance(self.device, str) or not _DEVICE_RE.match(self.device):
            raise EncoderError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any], *, base_dir: Path | None = None
    ) -> LaionClapConfig:
        """Validate a sidecar/env mapping; unknown keys are errors so typos cannot go unnoticed."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise EncoderError(f"unknown LAION-CLAP config keys {unknown}; known: {sorted(known)}")
        if "text_model_dir" not in values:
            raise EncoderError("LAION-CLAP config lacks 'text_model_dir'")
        data = dict(values)
        text_dir = data["text_model_dir"]
        if isinstance(text_dir, str | Path) and str(text_dir):
            text_dir = Path(text_dir).expanduser()
            if base_dir is not None and not text_dir.is_absolute():
                text_dir = base_dir / text_dir
            data["text_model_dir"] = text_dir
        return cls(**data)


def sidecar_path(checkpoint_path: Path) -> Path:
    """`<checkpoint>.json`, e.g. `music_audioset_epoch_15_esc_90.14.pt.json`."""
    return checkpoint_path.with_name(checkpoint_path.name + ".json")


def config_for_checkpoint(checkpoint_path: Path) -> LaionClapConfig:
    """The sidecar's config if there is one, else the environment's (see module docstring)."""
    sidecar = sidecar_path(checkpoint_path)
    if sidecar.is_file():
        try:
            values = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EncoderError(f"cannot read LAION-CLAP sidecar {sidecar}: {exc}") from exc
        if not isinstance(values, dict):
            raise EncoderError(f"LAION-CLAP sidecar {sidecar} must hold a JSON object")
        return LaionClapConfig.from_mapping(values, base_dir=sidecar.parent)
    text_dir = os.environ.get(ENV_TEXT_MODEL_DIR, "").strip()
    if not text_dir:
        raise EncoderError(
            f"no sidecar {sidecar} and {ENV_TEXT_MODEL_DIR} is not set: the RoBERTa "
            "config/tokenizer directory is needed to rebuild the text tower offline"
        )
    return LaionClapConfig.from_mapping(
        {
            "text_model_dir": text_dir,
            "amodel": os.environ.get(ENV_AMODEL, "").strip() or "HTSAT-base",
        }
    )


def check_text_model_dir(directory: Path) -> None:
    """Fail early and clearly: transformers 5 silently returns an empty tokenizer otherwise."""
    if not directory.is_dir():
        raise EncoderError(f"LAION-CLAP text_model_dir {directory} is not a directory")
    if not (directory / "config.json").is_file():
        raise EncoderError(f"LAION-CLAP text_model_dir {directory} lacks config.json")
    if not any(all((directory / f).is_file() for f in files) for files in _TOKENIZER_FILE_SETS):
        raise EncoderError(
            f"LAION-CLAP text_model_dir {directory} lacks tokenizer files "
            "(tokenizer.json, or vocab.json + merges.txt)"
        )


def checkpoint_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of the checkpoint, read in chunks (the real file is ~2 GB)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(path: Path) -> dict[str, Any]:
    """laion_clap's own reader: strips the DDP "module." prefix, drops position_ids."""
    import torch
    from laion_clap.clap_module.factory import load_state_dict

    try:
        state = load_state_dict(str(path), skip_params=True)
    except KeyError as exc:
        raise EncoderError(
            f"LAION-CLAP checkpoint {path} lacks {exc}; not a laion_clap training checkpoint"
        ) from exc
    except Exception as exc:  # torch.load raises many types for a foreign/corrupt file
        raise EncoderError(f"cannot read LAION-CLAP checkpoint {path}: {exc}") from exc
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise EncoderError(f"LAION-CLAP checkpoint {path} does not hold a tensor state dict")
    return dict(state)


def resolve_device(device: str) -> str:
    """Resolve "auto" to cuda if available; an explicit cuda without a GPU fails, no fallback."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EncoderError(f"device {device!r} requested but CUDA is not available")
    return device


@contextmanager
def local_roberta(text_model_dir: Path) -> Iterator[None]:
    """While active, laion_clap's `RobertaModel.from_pretrained('roberta-base')` builds the
    architecture from `text_model_dir` instead of downloading it.

    Only the name `RobertaModel` inside `laion_clap.clap_module.model` is swapped (the
    transformers class itself is untouched), and it is restored even if building fails.
    """
    import laion_clap.clap_module.model as clap_model
    from transformers import RobertaConfig, RobertaModel

    class _LocalRobertaModel:
        @staticmethod
        def from_pretrained(name: str, *args: Any, **kwargs: Any) -> RobertaModel:
            if name != "roberta-base":
                raise EncoderError(f"laion_clap asked for text model {name!r}, not roberta-base")
            return RobertaModel(RobertaConfig.from_pretrained(str(text_model_dir)))

    with _BUILD_LOCK:
        original = clap_model.RobertaModel
        clap_model.RobertaModel = _LocalRobertaModel
        try:
            yield
        finally:
            clap_model.RobertaModel = original


def load_weights(model: Any, state: Mapping[str, Any], path: Path) -> None:
    """Strict load with an error that names the differing keys (torch's message is a wall)."""
    expected = set(model.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:

        def show(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")

        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {show(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {show(unexpected)}")
        raise EncoderError(
            f"LAION-CLAP checkpoint {path} does not match the configured model "
            f"(check amodel/enable_fusion/text_model_dir): {'; '.join(parts)}"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # shape mismatches
        raise EncoderError(
            f"LAION-CLAP checkpoint {path} does not match the configured model: {exc}"
        ) from exc


@contextmanager
def _seeded_numpy(seed: int) -> Iterator[None]:
    """laion's fusion path draws chunks from numpy's global RNG; fix it, then put it back."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


class LaionClapEncoder:
    """A pretrained LAION-CLAP model, loaded strictly from a laion_clap training checkpoint."""

    name = NAME

    def __init__(
        self, checkpoint_path: Path, config: LaionClapConfig, *, batch_size: int = 16
    ) -> None:
        import laion_clap  # noqa: F401  (sets up its `clap_module`/`training` import paths)
        import torch
        from laion_clap.clap_module import create_model, list_models
        from transformers import AutoTokenizer, RobertaConfig

        checkpoint_path = Path(checkpoint_path)
        check_text_model_dir(config.text_model_dir)
        if config.amodel not in list_models():
            raise EncoderError(
                f"unknown laion_clap amodel {config.amodel!r}; known: {', '.join(list_models())}"
            )
        self.config = config
        self.batch_size = batch_size
        self.version = checkpoint_sha256(checkpoint_path)[:12]
        state = read_state_dict(checkpoint_path)

        text_dir = str(config.text_model_dir)
        try:
            text_config = RobertaConfig.from_pretrained(text_dir)
            tokenizer = AutoTokenizer.from_pretrained(text_dir)
        except (OSError, ValueError) as exc:
            raise EncoderError(
                f"cannot load RoBERTa config/tokenizer from {text_dir}: {exc}"
            ) from exc
        specials = set(tokenizer.all_special_ids)
        if len(tokenizer) <= len(specials) or len(tokenizer) > text_config.vocab_size:
            raise EncoderError(
                f"tokenizer in {text_dir} has {len(tokenizer)} tokens, which does not fit the "
                f"RoBERTa config's vocab_size {text_config.vocab_size}"
            )
        self._tokenizer = tokenizer

        self.device = resolve_device(config.device)
        try:
            with local_roberta(config.text_model_dir):
                model, model_cfg = create_model(
                    config.amodel,
                    config.tmodel,
                    pretrained="",
                    precision="fp32",
                    device=torch.device(self.device),
                    enable_fusion=config.enable_fusion,
                    fusion_type="aff_2d" if config.enable_fusion else "None",
                )
        except EncoderError:
            raise
        except (RuntimeError, OSError, ValueError) as exc:
            raise EncoderError(f"cannot build laion_clap model {config.amodel}: {exc}") from exc
        load_weights(model, state, checkpoint_path)
        del state
        model.eval()
        model.requires_grad_(False)
        self._model = model
        self._audio_cfg = dict(model_cfg["audio_cfg"])
        self.sample_rate = int(self._audio_cfg["sample_rate"])
        self.clip_samples = int(self._audio_cfg["clip_samples"])
        self.window_seconds = self.clip_samples / self.sample_rate

    @property
    def model(self) -> Any:
        """The underlying laion_clap `CLAP` module (eval mode, frozen), for audits and tests."""
        return self._model

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        """(n, samples) float32 mono at 48 kHz -> (n, 512) unit vectors, as laion_clap does it."""
        audio = np.asarray(windows)
        if audio.ndim != 2:
            raise EncoderError(f"expected (n, samples) mono windows, got shape {audio.shape}")
        if audio.shape[0] == 0:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        if audio.shape[1] == 0:
            raise EncoderError("audio windows are empty")
        if not np.issubdtype(audio.dtype, np.floating) or not np.isfinite(audio).all():
            raise EncoderError("audio windows must be finite floating-point samples")
        outputs = [
            self._embed_audio_batch(audio[start : start + self.batch_size])
            for start in range(0, len(audio), self.batch_size)
        ]
        return self._checked(np.concatenate(outputs))

    def _embed_audio_batch(self, audio: np.ndarray) -> np.ndarray:
        import torch
        from laion_clap.training.data import (
            float32_to_int16,
            get_audio_features,
            int16_to_float32,
        )

        fusion = self.config.enable_fusion
        inputs = []
        with torch.no_grad(), _seeded_numpy(0) if fusion else nullcontext():
            for window in audio.astype(np.float32, copy=False):
                if not fusion:
                    window = window[: self.clip_samples]  # laion: random crop; we: deterministic
                waveform = torch.from_numpy(int16_to_float32(float32_to_int16(window))).float()
                inputs.append(
                    get_audio_features(
                        {},
                        waveform,
                        self.clip_samples,
                        data_truncating="fusion" if fusion else "rand_trunc",
                        data_filling="repeatpad",
                        audio_cfg=self._audio_cfg,
                    )
                )
            embeddings = self._model.get_audio_embedding(inputs)
        return embeddings.detach().float().cpu().numpy()

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """n texts -> (n, 512) unit vectors, tokenised like laion_clap's CLAP_Module."""
        import torch

        if isinstance(texts, str):
            raise EncoderError("embed_texts takes a sequence of texts, not one string")
        items = list(texts)
        if not items:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        if not all(isinstance(text, str) for text in items):
            raise EncoderError("embed_texts takes strings only")
        outputs = []
        for start in range(0, len(items), self.batch_size):
            tokens = self._tokenizer(
                items[start : start + self.batch_size],
                padding="max_length",
                truncation=True,
                max_length=CONTEXT_LENGTH,
                return_tensors="pt",
            )
            data = {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}
            with torch.no_grad():
                embeddings = self._model.get_text_embedding(data)
            outputs.append(embeddings.detach().float().cpu().numpy())
        return self._checked(np.concatenate(outputs))

    def _checked(self, embeddings: np.ndarray) -> np.ndarray:
        embeddings = embeddings.astype(np.float32, copy=False)
        if embeddings.shape[1:] != (EMBEDDING_DIM,):
            raise EncoderError(
                f"LAION-CLAP produced {embeddings.shape[1:]} vectors, expected ({EMBEDDING_DIM},)"
            )
        if not np.isfinite(embeddings).all():
            raise EncoderError("LAION-CLAP produced non-finite embeddings (broken weights?)")
        return embeddings


@register_encoder(NAME)
def load_laion_clap(path: Path) -> LaionClapEncoder:
    """`load_encoder("laion-clap", path)`: config from the sidecar or the environment."""
    return LaionClapEncoder(path, config_for_checkpoint(path))
