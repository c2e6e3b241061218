"""WAV writing: 16-bit PCM with the provenance as readable RIFF metadata (``LIST/INFO`` and
the ``aprv`` chunk), before any signing."""

from __future__ import annotations

import datetime as dt
import json
import struct
from pathlib import Path

import numpy as np

from generation.provenance.files import _write_atomic
from generation.provenance.record import (
    CLAIM_GENERATOR,
    PROVENANCE_CHUNK_ID,
    Provenance,
    ProvenanceError,
)


def write_wav(path: Path, audio: np.ndarray, sample_rate: int, provenance: Provenance) -> None:
    """Write 16-bit PCM WAV with provenance as readable metadata.

    `audio` is ``(frames,)`` or ``(frames, channels)`` with 1 or 2 channels: floats in
    [-1, 1] (clipped) or int16. Chunks: ``fmt``, ``LIST/INFO`` (INAM, ISFT, ICMT, ICRD),
    ``aprv`` (provenance JSON, UTF-8), ``data``. Written atomically (temp file + rename).
    """
    samples = _pcm16(audio)
    if not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise ProvenanceError(f"sample rate must be a positive integer, got {sample_rate!r}")
    channels = samples.shape[1]
    block_align = 2 * channels
    fmt = struct.pack(
        "<HHIIHH", 1, channels, int(sample_rate), int(sample_rate) * block_align, block_align, 16
    )
    info = {
        b"INAM": provenance.title,
        b"ISFT": (
            f"{CLAIM_GENERATOR}; model {provenance.model_version}; "
            f"encoder {provenance.encoder_version}"
        ),
        b"ICMT": provenance.summary(),
        b"ICRD": _date_of(provenance.created_at),
    }
    info_body = b"INFO" + b"".join(
        _chunk(key, " ".join(value.split()).encode("utf-8") + b"\0") for key, value in info.items()
    )
    embedded = json.dumps(provenance.to_dict(), ensure_ascii=False, sort_keys=True).encode()
    body = (
        b"WAVE"
        + _chunk(b"fmt ", fmt)
        + _chunk(b"LIST", info_body)
        + _chunk(PROVENANCE_CHUNK_ID, embedded)
        + _chunk(b"data", samples.astype("<i2").tobytes())
    )
    if len(body) > 0xFFFFFFFF:
        raise ProvenanceError("audio too long for a RIFF/WAV file (4 GiB)")
    try:
        _write_atomic(Path(path), b"RIFF" + struct.pack("<I", len(body)) + body, mode=0o644)
    except OSError as exc:
        raise ProvenanceError(f"cannot write {path}: {exc}") from exc


def _pcm16(audio: np.ndarray) -> np.ndarray:
    samples = np.asarray(audio)
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2 or samples.shape[1] not in (1, 2):
        raise ProvenanceError(
            f"audio must be (frames,) or (frames, channels) with 1 or 2 channels, "
            f"got shape {np.shape(audio)}"
        )
    if samples.dtype == np.int16:
        return samples
    if not np.issubdtype(samples.dtype, np.floating):
        raise ProvenanceError(f"audio must be float or int16, got {samples.dtype}")
    if not np.all(np.isfinite(samples)):
        raise ProvenanceError("audio contains NaN or infinite samples")
    return np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)


def _chunk(chunk_id: bytes, payload: bytes) -> bytes:
    return (
        chunk_id + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")
    )


def _date_of(created_at: str) -> str:
    try:
        return dt.datetime.fromisoformat(created_at).date().isoformat()
    except ValueError:
        return created_at
