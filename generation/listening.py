"""Listening samples for staff: an output beside its references, as audio and spectrograms.

Plain module (arrays in, files out). The spectrogram is a linear-frequency STFT up to 4 kHz,
where the partials of tonal music sit: a smear there is audible as texture, not notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

SPECTROGRAM_MAX_HZ = 4_000
PANEL_SECONDS = 10.0  # panels show the first 10 s so outputs and references share a scale


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(audio, dtype=np.float32), sample_rate, subtype="PCM_16")


def write_spectrograms(
    path: Path, panels: Sequence[tuple[str, np.ndarray]], sample_rate: int
) -> None:
    """One PNG with a spectrogram per (title, audio), stacked, on the same dB and time scale."""
    import librosa
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.4 * len(panels)), squeeze=False)
    hop = 256
    for axis, (title, audio) in zip(axes[:, 0], panels, strict=True):
        y = np.asarray(audio, dtype=np.float32)[: int(PANEL_SECONDS * sample_rate)]
        spec = np.abs(librosa.stft(y, n_fft=4096, hop_length=hop))
        db = librosa.amplitude_to_db(spec, ref=max(float(spec.max()), 1e-9), top_db=80)
        freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=4096)
        rows = freqs <= SPECTROGRAM_MAX_HZ
        seconds = db.shape[1] * hop / sample_rate
        axis.imshow(
            db[rows], origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0,
            extent=(0, seconds, 0, freqs[rows][-1]),
        )  # fmt: skip
        axis.set_title(title, fontsize=9, loc="left")
        axis.set_ylabel("Hz")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
