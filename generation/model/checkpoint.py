"""Generator checkpoints: config + weights + metadata, rebuilt only from the stored config.

The file holds {"format", "model", "config", "state_dict", "metadata"}; weights are stored in
float16 by default (half the size; outputs then differ from the in-memory float32 model by the
rounding, and reproduce exactly between loads) or float32. `save_generator` returns the file's
sha256, which is the model version attribution and royalties refer to.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from generation.model.config import GeneratorConfig, GeneratorError
from generation.model.dit import DiffusionTransformer
from generation.model.pipeline import Generator

CHECKPOINT_FORMAT = 1
MODEL_NAME = "mel-dit"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_generator(
    path: str | Path,
    generator: Generator,
    metadata: dict[str, Any],
    *,
    dtype: torch.dtype = torch.float16,
) -> str:
    """Write `generator` to `path`; returns the sha256 of the file."""
    if dtype not in (torch.float16, torch.float32):
        raise GeneratorError("checkpoints store float16 or float32 weights")
    state = {
        name: (value.detach().cpu().to(dtype) if value.is_floating_point() else value.cpu())
        for name, value in generator.model.state_dict().items()
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "model": MODEL_NAME,
            "config": generator.config.to_dict(),
            "state_dict": state,
            "metadata": dict(metadata),
        },
        path,
    )
    return file_sha256(path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise GeneratorError(f"generator checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        raise GeneratorError(f"{path} is not a readable generator checkpoint: {exc}") from exc
    if not isinstance(data, dict) or data.get("model") != MODEL_NAME:
        raise GeneratorError(f"{path} is not a {MODEL_NAME} checkpoint")
    if data.get("format") != CHECKPOINT_FORMAT:
        raise GeneratorError(
            f"{path} has checkpoint format {data.get('format')}, expected {CHECKPOINT_FORMAT}"
        )
    return data


def load_generator(path: str | Path, device: str | None = None) -> Generator:
    """Rebuild the generator from the checkpoint's own config and load its weights strictly."""
    data = read_checkpoint(path)
    config = GeneratorConfig.from_dict(data["config"])
    model = DiffusionTransformer(config.dit, config.mel.n_mels)
    state = data.get("state_dict")
    if not isinstance(state, dict):
        raise GeneratorError(f"{path} has no state_dict")
    try:
        model.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True
        )
    except (RuntimeError, AttributeError) as exc:
        raise GeneratorError(f"{path} does not match its own config: {exc}") from exc
    metadata = dict(data.get("metadata") or {})
    metadata["sha256"] = file_sha256(path)
    return Generator(model, config, device=device, metadata=metadata)
