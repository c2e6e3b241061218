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
    clips = [np.asarray(c, np.float64) for c in a_by_clip]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        mean_a, cov_a = _moments(clips, rng.integers(0, len(clips), len(clips)))
        draws.append(max(_frechet_of_moments(mean_a, cov_a, mean_b, cov_b, root_b), 0.0))
    return point, float(np.std(draws, ddof=1))


def _moments(clips: list[np.ndarray], picked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the vectors of the picked clips."""
    x = np.concatenate([clips[i] for i in picked])
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _frechet_of_moments(
    mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray, root_b: np.ndarray
) -> float:
    """The Frechet distance from both sets' moments, with root_b = cov_b^(1/2) computed by the
    caller (once per b), unclipped: a fit of many draws must keep their negative noise."""
    cross = np.linalg.eigvalsh(root_b @ cov_a @ root_b)
    value = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b)
    return float(value - 2 * np.sqrt(np.clip(cross, 0, None)).sum())


# Fractions of both sets' clips drawn to fit FD(1/f); 1/f spans 1 to 2.5, where the sets keep
# more vectors than the spaces have dimensions for the sizes evaluate_generator uses.
EXTRAPOLATION_FRACTIONS = (0.4, 0.5, 0.6, 0.7, 0.85, 1.0)


@dataclass(frozen=True)
class UnbiasedFrechet:
    """FD-infinity: the Frechet distance extrapolated to infinitely many clips in both sets."""

    distance: float
    se: float  # bootstrap over clips of both sets
    curve: tuple[tuple[float, float], ...]  # (fraction of clips, mean FD at that fraction)
    slope: float  # FD = distance + slope / fraction: the finite-sample bias at fraction 1

    def to_dict(self) -> dict[str, object]:
        return {
            "distance": round(self.distance, 4),
            "se": round(self.se, 4),
            "bias_at_full_size": round(self.slope, 4),
            "curve": [[f, round(v, 4)] for f, v in self.curve],
        }


def _as_clips(vectors: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    """Per-clip (k, d) arrays; a bare (n, d) array is n one-vector clips."""
    if isinstance(vectors, np.ndarray) and vectors.ndim == 2:
        return [row[None, :] for row in np.asarray(vectors, np.float64)]
    return [np.atleast_2d(np.asarray(v, np.float64)) for v in vectors]


def _extrapolated(
    a: list[np.ndarray],
    b: list[np.ndarray],
    rng: np.random.Generator,
    fractions: Sequence[float],
    draws: int,
) -> tuple[float, float, list[tuple[float, float]]]:
    xs, ys, curve = [], [], []
    for fraction in fractions:
        n_a, n_b = max(2, round(fraction * len(a))), max(2, round(fraction * len(b)))
        values = []
        for _ in range(1 if fraction >= 1 else draws):
            mean_a, cov_a = _moments(a, rng.choice(len(a), n_a, replace=False))
            mean_b, cov_b = _moments(b, rng.choice(len(b), n_b, replace=False))
            values.append(_frechet_of_moments(mean_a, cov_a, mean_b, cov_b, _sqrtm_psd(cov_b)))
        xs.extend([1.0 / fraction] * len(values))
        ys.extend(values)
        curve.append((fraction, float(np.mean(values))))
    slope, intercept = np.polyfit(np.array(xs), np.array(ys), 1)
    return float(intercept), float(slope), curve


def frechet_unbiased(
    a_by_clip: Sequence[np.ndarray] | np.ndarray,
    b_by_clip: Sequence[np.ndarray] | np.ndarray,
    *,
    fractions: Sequence[float] = EXTRAPOLATION_FRACTIONS,
    draws: int = 3,
    resamples: int = 12,
    seed: int = 0,
) -> UnbiasedFrechet:
    """The Frechet distance without its sample-size bias (FD-infinity: Chong & Forsyth 2020;
    FAD-infinity for music, Gui et al. 2024). A Frechet distance estimated from n vectors is
    too large by roughly c / n (both sets' covariance noise), so two rows measured with tens of
    clips differ mostly by that bias: real audio against other real audio read 16 in musicnn's
    space. Both sets are subsampled (clips without replacement) to each fraction f, the
    distances are fitted by FD(f) = FD_inf + k / f, and the intercept is reported; its error is
    a bootstrap over clips of the whole fit. A clip's vectors move together: they are not
    independent."""
    a, b = _as_clips(a_by_clip), _as_clips(b_by_clip)
    if min(len(a), len(b)) < 4:
        raise ValueError("need at least 4 clips in each set to extrapolate")
    if a[0].shape[1] != b[0].shape[1]:
        raise ValueError(f"need sets of the same d, got {a[0].shape[1]} and {b[0].shape[1]}")
    rng = np.random.default_rng(seed)
    distance, slope, curve = _extrapolated(a, b, rng, fractions, draws)
    intercepts = []
    for _ in range(resamples):
        picked_a = rng.integers(0, len(a), len(a))
        picked_b = rng.integers(0, len(b), len(b))
        resampled = _extrapolated(
            [a[i] for i in picked_a], [b[i] for i in picked_b], rng, fractions, draws
        )
        intercepts.append(resampled[0])
    se = float(np.std(intercepts, ddof=1)) if resamples > 1 else float("nan")
    return UnbiasedFrechet(distance, se, tuple(curve), slope)


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
    # per space, each clip's vectors (not in the report; for measures that reuse them)
    vectors: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)

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
    reference: dict[str, Sequence[np.ndarray] | np.ndarray],
    seed: int = 0,
) -> SetReport:
    """Frechet distance of the set to `reference` (real held-out vectors, per clip) in every
    embedder's space, at the set's size and extrapolated to infinitely many clips (when both
    sets have at least 4 clips), and the median signal measures of its clips."""
    if len(clips) < 2:
        raise ValueError(f"set {name!r} needs at least 2 clips")
    report = SetReport(name, len(clips), sum(len(c.audio) for c in clips) / sample_rate)
    for space, embed in embedders.items():
        per_clip = [embed([c.audio], sample_rate) for c in clips]
        report.vectors[space] = per_clip
        real = _as_clips(reference[space])
        value, error = frechet_with_error(per_clip, np.concatenate(real), seed=seed)
        report.frechet[space] = {"distance": round(value, 4), "se": round(error, 4)}
        if min(len(per_clip), len(real)) >= 4:
            fit = frechet_unbiased(per_clip, real, seed=seed)
            report.frechet[space]["unbiased"] = fit.to_dict()
    measures = [signal_measures(c.audio, sample_rate).to_dict() for c in clips]
    for key in measures[0]:
        values = np.array([m[key] for m in measures])
        report.signal[key] = round(float(np.median(values)), 4)
        report.signal_iqr[key] = [round(float(q), 4) for q in np.percentile(values, [25, 75])]
    return report


def reference_vectors(
    clips: Sequence[AudioClip], sample_rate: int, embedders: dict[str, Embedder]
) -> dict[str, list[np.ndarray]]:
    """The real held-out set every other set is measured against, per space and clip."""
    return {
        space: [embed([c.audio], sample_rate) for c in clips] for space, embed in embedders.items()
    }
