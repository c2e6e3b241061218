"""A melody signal for the similarity audit: basic-pitch's note posteriors as a key-invariant
fingerprint.

basic-pitch 0.4.0 (Spotify, Apache-2.0) ships its note-transcription network as ONNX; it runs
with onnxruntime on CPU. Per 3-s clip: the 88 piano-key note posteriors (86 frames/s, 2-s
windows, the last one flush with the clip's end) are folded into 12 pitch classes and pooled
into 8 frames/s; the fingerprint is the magnitude of that chroma sequence's 2-D Fourier
transform (2DFTM, Bertin-Mahieux & Ellis 2012, for cover songs). A transposition rotates the
pitch-class axis and a shift in time moves the time axis: neither changes a Fourier magnitude,
so the same melody in another key, or starting a little later, has the same fingerprint. The
DC term (how much is playing at all) is dropped, the rest compressed with a square root,
centred, zero-padded to 512 dimensions and L2-normalised, so cosine similarity compares melodies and
the audit's clip table, calibration and search take it like any other encoder.

Audio-only (`embed_texts` refuses). Plain module: no Django imports.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from catalog.encoders import EncoderError, register_encoder
from catalog.encoders.audio_only import (
    AudioOnlyEncoder,
    audio_rows,
    card_digest,
    installed_package_dir,
    read_card,
    unit_rows,
)

NAME = "melody"
SAMPLE_RATE = 22_050
WINDOW_SAMPLES = 43_844  # the network's 2-s input
FRAMES_PER_WINDOW = 172
LOWEST_KEY_PITCH_CLASS = 9  # key 0 is A0; pitch classes count from C
POOL_FRAMES = 11  # 86 frames/s -> ~8 frames/s
CHROMA_FRAMES = 32  # 4 s of pooled frames: a 3-s clip's sequence, zero-padded
MODEL_PATH = Path("saved_models/icassp_2022/nmp.onnx")


def basic_pitch_model() -> Path:
    package = installed_package_dir(
        "basic_pitch",
        "`make install` installs basic-pitch==0.4.0 (without its dependencies: they pull "
        "TensorFlow; onnxruntime runs the model)",
    )
    path = package / MODEL_PATH
    if not path.is_file():
        raise EncoderError(f"basic-pitch's ONNX model is missing: {path}")
    return path


@lru_cache(maxsize=2)
def _session(model: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # no warnings about unused initialisers on every load
    try:
        return onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types
        raise EncoderError(f"cannot load basic-pitch model {model}: {exc}") from exc


def note_posteriors(audio: np.ndarray, model: Path) -> np.ndarray:
    """(frames, 88) note probabilities of mono 22.05-kHz audio, at least one 2-s window."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.size < WINDOW_SAMPLES:
        raise EncoderError(
            f"the melody signal needs at least {WINDOW_SAMPLES / SAMPLE_RATE:.2f} s of audio "
            f"per clip, got {audio.size / SAMPLE_RATE:.2f} s"
        )
    starts = list(range(0, audio.size - WINDOW_SAMPLES + 1, WINDOW_SAMPLES))
    if starts[-1] != audio.size - WINDOW_SAMPLES:
        starts.append(audio.size - WINDOW_SAMPLES)
    batch = np.stack([audio[s : s + WINDOW_SAMPLES] for s in starts])[:, :, None]
    session = _session(model)
    (notes,) = session.run(["StatefulPartitionedCall:1"], {"serving_default_input_2:0": batch})
    return notes.reshape(-1, notes.shape[-1])


def chroma_sequence(notes: np.ndarray) -> np.ndarray:
    """(CHROMA_FRAMES, 12) pitch-class activity, pooled in time, zero-padded or cut."""
    keys = notes.shape[1]
    chroma = np.zeros((notes.shape[0], 12), dtype=np.float32)
    for pitch_class in range(12):
        chroma[:, pitch_class] = notes[
            :, (np.arange(keys) + LOWEST_KEY_PITCH_CLASS) % 12 == pitch_class
        ].sum(axis=1)
    pooled = chroma[: len(chroma) // POOL_FRAMES * POOL_FRAMES]
    pooled = pooled.reshape(-1, POOL_FRAMES, 12).mean(axis=1)
    sequence = np.zeros((CHROMA_FRAMES, 12), dtype=np.float32)
    sequence[: min(len(pooled), CHROMA_FRAMES)] = pooled[:CHROMA_FRAMES]
    return sequence


def fingerprint(sequence: np.ndarray) -> np.ndarray:
    """The 2-D Fourier magnitude of a chroma sequence without its DC term, square-rooted and
    centred: the non-redundant half (time frequencies 0..N/2, all 12 pitch-class ones)."""
    magnitude = np.abs(np.fft.fft2(sequence))[: CHROMA_FRAMES // 2 + 1]
    magnitude[0, 0] = 0.0
    compressed = np.sqrt(magnitude).reshape(-1)
    # centred: every clip's spectrum falls off alike, so uncentred cosines of unrelated clips
    # were 0.94 on average (0.81 centred; same top-1 under pitch, tempo and noise)
    return (compressed - compressed.mean()).astype(np.float32)


class MelodyAuditEncoder(AudioOnlyEncoder):
    """An `AudioTextEncoder` for audio only: clips in, key-invariant melody fingerprints out."""

    name = NAME
    sample_rate = SAMPLE_RATE
    window_seconds = 3.0  # the audit's clip length

    def __init__(self, model: Path, version: str) -> None:
        self.model = model
        self.version = version

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        rows = [
            fingerprint(chroma_sequence(note_posteriors(window, self.model)))
            for window in audio_rows(windows)
        ]
        return unit_rows(rows, "the melody signal")


@register_encoder(NAME)
def load(path: Path) -> MelodyAuditEncoder:
    """`path` is a card (`catalog/encoders/pretrained/melody-basic-pitch.json`); the model
    comes from the installed wheel, and the version digests both."""
    read_card(path, NAME)
    model = basic_pitch_model()
    return MelodyAuditEncoder(model, f"basic-pitch-0.4.0-2dftm-{card_digest(path, [model])}")
