"""The generator-quality measures on signals whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from generation.quality import (
    AudioClip,
    frechet_distance,
    frechet_unbiased,
    frechet_with_error,
    loudness_range,
    measure_set,
    signal_measures,
)

SR = 22_050


def _tone(freq: float, seconds: float = 3.0, partials: int = 6) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, partials + 1)).astype(
        np.float32
    )


def _noise(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(int(seconds * SR)).astype(np.float32)


def test_frechet_distance_is_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 8))
    b = rng.standard_normal((4000, 8))
    assert frechet_distance(a, b) < 0.05
    shifted = frechet_distance(a, b + 2.0)  # mean gap 8 * 2^2 = 32
    assert shifted == pytest.approx(32.0, rel=0.05)
    wider = frechet_distance(a, 3.0 * b)  # per dim (1 - 3)^2 = 4 -> 32
    assert wider == pytest.approx(32.0, rel=0.1)


def test_frechet_distance_refuses_mismatched_or_tiny_sets():
    with pytest.raises(ValueError, match="same d"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def test_bootstrap_error_shrinks_with_more_clips():
    rng = np.random.default_rng(1)
    reference = rng.standard_normal((500, 4))
    few = [rng.standard_normal((5, 4)) + 0.5 for _ in range(8)]
    many = [rng.standard_normal((5, 4)) + 0.5 for _ in range(80)]
    _, se_few = frechet_with_error(few, reference)
    _, se_many = frechet_with_error(many, reference)
    assert 0 < se_many < se_few


def test_the_extrapolated_distance_removes_the_sample_size_bias():
    """Sets of 120 and 240 clips (3 vectors each, 40-d): the distance at that size carries a
    bias; the extrapolation to infinitely many clips recovers the population's distance."""
    rng = np.random.default_rng(3)
    mix = rng.standard_normal((40, 40)) / np.sqrt(40)

    def clips(n, shift=0.0):
        return [rng.standard_normal((3, 40)) @ mix + shift for _ in range(n)]

    for shift in (0.0, 0.5):  # population distance: 40 * shift^2 = 0 and 10
        truth = 40 * shift**2
        a, b = clips(120), clips(240, shift)
        finite = frechet_distance(np.concatenate(a), np.concatenate(b))
        fit = frechet_unbiased(a, b, seed=1)
        assert finite - truth > 0.8  # the bias the extrapolation exists for
        assert abs(fit.distance - truth) < max(3 * fit.se, 0.3), (shift, fit)
        assert abs(fit.distance - truth) < (finite - truth) / 2
        assert fit.slope > 0 and fit.curve[-1][0] == 1.0
        assert fit.curve[0][1] > fit.curve[-1][1]  # fewer clips, larger distance
        assert set(fit.to_dict()) == {"distance", "se", "bias_at_full_size", "curve"}


def test_the_extrapolated_distance_refuses_tiny_or_mismatched_sets():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="at least 4 clips"):
        frechet_unbiased(rng.standard_normal((3, 2)), rng.standard_normal((50, 2)))
    with pytest.raises(ValueError, match="same d"):
        frechet_unbiased(rng.standard_normal((9, 2)), rng.standard_normal((9, 3)))


def test_a_tone_is_harmonic_and_flat_noise_is_not():
    tone, noise = signal_measures(_tone(220.0), SR), signal_measures(_noise(), SR)
    assert tone.spectral_flatness < 0.01 < 0.3 < noise.spectral_flatness
    assert tone.harmonic_share > 0.9 > 0.6 > noise.harmonic_share
    clicks = np.zeros(3 * SR, np.float32)
    clicks[:: SR // 4] = 1.0  # four onsets a second
    assert signal_measures(clicks, SR).onset_strength > 3 * tone.onset_strength


def test_loudness_range_reads_level_steps_in_db():
    steady = _tone(330.0, 4.0)
    assert loudness_range(steady, SR) < 1.0
    stepped = np.concatenate([steady[: 2 * SR], 0.1 * steady[: 2 * SR]])  # -20 dB
    assert loudness_range(stepped, SR) == pytest.approx(20.0, abs=1.5)
    assert loudness_range(np.zeros(SR, np.float32), SR) == 0.0


def test_measure_set_puts_noise_farther_from_tones_than_other_tones():
    def mean_spectrum(clips, rate):  # a cheap embedder: 16 band energies per 0.5 s
        out = []
        for audio in clips:
            frames = audio[: len(audio) // 11025 * 11025].reshape(-1, 11025)
            spectra = np.abs(np.fft.rfft(frames, axis=1))[:, :4096].reshape(len(frames), 16, -1)
            out.append(np.log(spectra.mean(axis=2) + 1e-6))
        return np.concatenate(out)

    tones = [AudioClip(_tone(f), "tone") for f in (200, 230, 260, 290, 320, 350)]
    reference = {"bands": [mean_spectrum([c.audio], SR) for c in tones]}
    other_tones = [AudioClip(_tone(f), "tone") for f in (210, 240, 270, 300, 330, 360)]
    noises = [AudioClip(_noise(seed=s), "noise") for s in range(6)]
    embedders = {"bands": mean_spectrum}
    near = measure_set("tones", other_tones, SR, embedders=embedders, reference=reference)
    far = measure_set("noise", noises, SR, embedders=embedders, reference=reference)
    assert far.frechet["bands"]["distance"] > 3 * near.frechet["bands"]["distance"]
    assert near.signal["harmonic_share"] > far.signal["harmonic_share"]
    assert near.to_dict()["clips"] == 6
    assert (
        far.frechet["bands"]["unbiased"]["distance"] > near.frechet["bands"]["unbiased"]["distance"]
    )
    with pytest.raises(ValueError, match="at least 2"):
        measure_set("one", noises[:1], SR, embedders=embedders, reference=reference)
