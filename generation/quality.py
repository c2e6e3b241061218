"""Does the generator make music? Distribution and signal measures of sets of audio clips.

One table compares sets measured the same way: real held-out catalogue audio, the same audio
through the model's own analysis-resynthesis (log-mel + Griffin-Lim: the ceiling of anything
this model family can render), and model outputs. Plain module (arrays in, figures out), no
Django imports; the embedders are passed in, so the Frechet distance can use any space.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

# (n, samples) audio at `sample_rate` -> (n_vectors, d) embeddings of all of it
Embedder = Callable[[Sequence[np.ndarray], int], np.ndarray]
MOMENTARY_SECONDS = 0.4  # EBU R128 momentary loudness window
SILENCE_DB = -60.0  # frames quieter than this (re full scale) do not count


@dataclass(frozen=True)
class AudioClip:
    """One clip of a set: mono float32 audio and what it came from."""

    audio: np.ndarray
    source: str  # "recording 12 @ 30.0 s" or "generation 3 (refs 4, 9)"
    reference_ids: tuple[int, ...] = ()


@dataclass
class SignalMeasures:
    """Per-clip listen-proxies, median over the clip's frames."""

    spectral_flatness: float  # 0 = pure tones, 1 = white noise
    harmonic_share: float  # energy share of the harmonic part (HPSS): partials vs smear/clicks
    onset_strength: float  # mean spectral-flux onset envelope: rhythm and attacks
    loudness_range_db: float  # p95 - p10 of 400-ms RMS: dynamics

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in self.__dict__.items()}


def signal_measures(audio: np.ndarray, sample_rate: int) -> SignalMeasures:
    """The measures of one clip, peak-normalised first so sets at different levels compare."""
    import librosa

    y = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak < 1e-6:
        return SignalMeasures(1.0, 0.0, 0.0, 0.0)
    y = y / peak
    stft = np.abs(librosa.stft(y, n_fft=2048, hop_length=512))
    power = stft**2
    loud = power.sum(axis=0) > power.sum(axis=0).max() * 10 ** (SILENCE_DB / 10)
    flatness = librosa.feature.spectral_flatness(S=stft, power=1.0)[0]
    harmonic, percussive = librosa.decompose.hpss(stft)
    h, p = (harmonic**2).sum(), (percussive**2).sum()
    onset = librosa.onset.onset_strength(S=librosa.amplitude_to_db(stft), sr=sample_rate)
    return SignalMeasures(
        spectral_flatness=float(np.median(flatness[loud])) if loud.any() else 1.0,
        harmonic_share=float(h / (h + p)) if h + p > 0 else 0.0,
        onset_strength=float(np.mean(onset)),
        loudness_range_db=loudness_range(y, sample_rate),
    )


def loudness_range(audio: np.ndarray, sample_rate: int) -> float:
    """p95 - p10 (dB) of momentary RMS levels above the silence gate."""
    window = max(1, int(MOMENTARY_SECONDS * sample_rate))
    hop = window // 2
    if len(audio) < window:
        return 0.0
    frames = np.lib.stride_tricks.sliding_window_view(audio, window)[::hop]
    level = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    level = level[level > SILENCE_DB]
    if len(level) < 2:
        return 0.0
    return float(np.percentile(level, 95) - np.percentile(level, 10))


def _sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def trace_sqrt_product(c1: np.ndarray, c2: np.ndarray) -> tuple[float, str]:
    """tr sqrt(C1 C2). First scipy.linalg.sqrtm(C1 C2) (as FID implementations do); when it
    fails, is not finite or has an imaginary part above 1e-3 of its scale (near-singular
    covariances), the exact symmetric form tr sqrt(S C2 S) with S = C1^(1/2), both by
    eigendecomposition with negative round-off eigenvalues clipped to 0."""
    try:
        from scipy import linalg

        with warnings.catch_warnings():  # singular covariances are expected: see fallback
            warnings.simplefilter("ignore")
            root = linalg.sqrtm(c1 @ c2)
        if isinstance(root, tuple):  # older scipy returns (root, error estimate)
            root = root[0]
        scale = max(1.0, float(np.abs(root).max()))
        if np.all(np.isfinite(root)) and float(np.abs(np.imag(root)).max()) <= 1e-3 * scale:
            return float(np.trace(np.real(root))), "sqrtm"
    except (ImportError, ValueError, np.linalg.LinAlgError):
        pass
    s = _sqrtm_psd(c1)
    inner = s @ c2 @ s
    values = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(np.clip(values, 0, None)).sum()), "eigh"


def frechet_distance(a: np.ndarray, b: np.ndarray, *, return_method: bool = False):
    """Frechet distance between Gaussians fitted to two (n, d) sets of vectors (FAD, Kilgour
    et al. 2019): ||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)). Also attribution's
    measure of how far an unlearned model's samples move (attribution.tda.evaluate)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (n, d) sets of the same d, got {a.shape} and {b.shape}")
    if min(len(a), len(b)) < 2:
        raise ValueError("need at least 2 vectors in each set")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("embeddings must be finite")
    c_a = np.atleast_2d(np.cov(a, rowvar=False))
    c_b = np.atleast_2d(np.cov(b, rowvar=False))
    cross, method = trace_sqrt_product(c_a, c_b)
    gap = float(((a.mean(axis=0) - b.mean(axis=0)) ** 2).sum())
    value = max(gap + float(np.trace(c_a) + np.trace(c_b)) - 2 * cross, 0.0)
    return (value, method) if return_method else value


def frechet_with_error(
    a_by_clip: Sequence[np.ndarray], b: np.ndarray, *, resamples: int = 30, seed: int = 0
) -> tuple[float, float]:
    """The distance of the clips' vectors to `b`, and its bootstrap standard error over clips
    (a clip's vectors are resampled together: they are not independent of each other)."""
    point = frechet_distance(np.concatenate(a_by_clip), b)
    b = np.asarray(b, dtype=np.float64)
    mean_b, cov_b = b.mean(axis=0), np.atleast_2d(np.cov(b, rowvar=False))
    root_b = _sqrtm_psd(cov_b)  # once: each resample then costs one symmetric eigensolve
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        picked = rng.integers(0, len(a_by_clip), len(a_by_clip))
        a = np.concatenate([np.asarray(a_by_clip[i], np.float64) for i in picked])
        cov_a = np.atleast_2d(np.cov(a, rowvar=False))
        cross = np.linalg.eigvalsh(root_b @ cov_a @ root_b)
        value = ((a.mean(axis=0) - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b)
        draws.append(max(float(value - 2 * np.sqrt(np.clip(cross, 0, None)).sum()), 0.0))
    return point, float(np.std(draws, ddof=1))


@dataclass
class SetReport:
    """One row of the quality table."""

    name: str
    clips: int
    seconds: float
    frechet: dict[str, dict[str, float]] = field(default_factory=dict)  # space -> value, se
    signal: dict[str, float] = field(default_factory=dict)  # medians over clips
    signal_iqr: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)  # conditioning, memorisation, rtf

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "clips": self.clips,
            "seconds": round(self.seconds, 1),
            "frechet": self.frechet,
            "signal": self.signal,
            "signal_iqr": self.signal_iqr,
            **self.extra,
        }


def measure_set(
    name: str,
    clips: Sequence[AudioClip],
    sample_rate: int,
    *,
    embedders: dict[str, Embedder],
    reference: dict[str, np.ndarray],
    seed: int = 0,
) -> SetReport:
    """Frechet distance of the set to `reference` (real held-out vectors) in every embedder's
    space, and the median signal measures of its clips."""
    if len(clips) < 2:
        raise ValueError(f"set {name!r} needs at least 2 clips")
    report = SetReport(name, len(clips), sum(len(c.audio) for c in clips) / sample_rate)
    for space, embed in embedders.items():
        per_clip = [embed([c.audio], sample_rate) for c in clips]
        value, error = frechet_with_error(per_clip, reference[space], seed=seed)
        report.frechet[space] = {"distance": round(value, 4), "se": round(error, 4)}
    measures = [signal_measures(c.audio, sample_rate).to_dict() for c in clips]
    for key in measures[0]:
        values = np.array([m[key] for m in measures])
        report.signal[key] = round(float(np.median(values)), 4)
        report.signal_iqr[key] = [round(float(q), 4) for q in np.percentile(values, [25, 75])]
    return report


def reference_vectors(
    clips: Sequence[AudioClip], sample_rate: int, embedders: dict[str, Embedder]
) -> dict[str, np.ndarray]:
    """The real held-out set every other set is measured against, per space."""
    return {
        space: np.concatenate([embed([c.audio], sample_rate) for c in clips])
        for space, embed in embedders.items()
    }
