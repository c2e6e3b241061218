"""The similarity audit's plain modules (no database): clip splitting, the seed 003 section 5.1
perturbations measured on the audio they return, the section 4.1 calibration statistics
against a brute-force recomputation, the flag rule and the study tables."""

from __future__ import annotations

import numpy as np
import pytest

from attribution.audit import (
    AuditError,
    CalibrationConfig,
    ClipHit,
    ClipSpec,
    OutputTooShort,
    best_matches,
    calibrate,
    flagged_matches,
    split_clips,
)
from attribution.audit.calibration import threshold_value
from attribution.audit.clips import clip_count
from attribution.audit.perturb import (
    Perturbation,
    add_white_noise,
    dominant_frequency,
    mash_up,
    pitch_shift,
    rms,
    time_stretch,
)
from attribution.audit.robustness import Case, perturbed, recall_rows, threshold_table
from catalog.audio.decoding import load_mono
from tests.conftest import REAL_OGG, require_real_audio

RATE = 16_000


def tone(frequency: float, seconds: float = 2.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    require_real_audio(REAL_OGG)
    return load_mono(REAL_OGG, sample_rate=RATE)[RATE * 20 : RATE * 26]


# -- clips ---------------------------------------------------------------------------------------


def test_clips_cover_the_audio_at_the_hop_and_drop_a_short_tail():
    audio = np.arange(int(10.2 * RATE), dtype=np.float32)
    clips = split_clips(audio, RATE, ClipSpec(3.0, 1.5))
    assert [start for start, _ in clips] == [0.0, 1.5, 3.0, 4.5, 6.0]
    assert len(clips) == clip_count(10.2, ClipSpec(3.0, 1.5))
    assert all(len(c) == 3 * RATE for _, c in clips)
    start, last = clips[-1]
    assert last[0] == audio[int(start * RATE)]  # the clip is the audio there, not padding


def test_audio_shorter_than_one_clip_is_refused_not_padded():
    with pytest.raises(OutputTooShort, match="2.50 s long"):
        split_clips(np.ones(int(2.5 * RATE), dtype=np.float32), RATE, ClipSpec(3.0, 3.0))
    assert len(split_clips(np.ones(3 * RATE, dtype=np.float32), RATE, ClipSpec(3.0, 3.0))) == 1


@pytest.mark.parametrize("clip,hop", [(0, 1), (3, 0), (3, 4), (float("nan"), 1)])
def test_bad_clip_specs_are_refused(clip, hop):
    with pytest.raises(AuditError):
        ClipSpec(clip, hop)


def test_stereo_or_non_finite_audio_is_refused():
    with pytest.raises(AuditError, match="mono"):
        split_clips(np.zeros((2, 5 * RATE)), RATE, ClipSpec())
    audio = np.zeros(5 * RATE, dtype=np.float32)
    audio[10] = np.nan
    with pytest.raises(AuditError, match="NaN"):
        split_clips(audio, RATE, ClipSpec())


# -- perturbations -----------------------------------------------------------------------------


@pytest.mark.parametrize("semitones", [-12, -3, 1, 6, 12])
def test_pitch_shift_moves_the_dominant_frequency_by_the_semitone_ratio(semitones):
    source = tone(440.0)
    shifted = pitch_shift(source, RATE, semitones)
    assert len(shifted) == len(source)  # the length is kept
    expected = 440.0 * 2 ** (semitones / 12)
    assert dominant_frequency(shifted, RATE) == pytest.approx(expected, rel=0.015)


def semitone_profile(audio: np.ndarray) -> np.ndarray:
    """Mean log-magnitude spectrum on a semitone grid from 110 Hz to 3.5 kHz."""
    frames = np.lib.stride_tricks.sliding_window_view(audio, 4096)[::1024] * np.hanning(4096)
    spectrum = np.abs(np.fft.rfft(frames, axis=1)).mean(axis=0)
    freqs = np.fft.rfftfreq(4096, 1.0 / RATE)
    edges = 110.0 * 2 ** ((np.arange(61) - 0.5) / 12)
    bands = [
        spectrum[(freqs >= lo) & (freqs < hi)].mean()
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    ]
    return np.log(np.asarray(bands) + 1e-9)


@pytest.mark.parametrize("semitones", [-3, 3])
def test_pitch_shift_moves_real_music_by_the_semitones_and_keeps_its_length(music, semitones):
    shifted = pitch_shift(music, RATE, semitones)
    assert len(shifted) == len(music)
    before, after = semitone_profile(music), semitone_profile(shifted)

    def agreement(lag: int) -> float:  # correlation of the profiles, `after` moved by lag
        a, b = (
            (before[: len(before) - lag], after[lag:]) if lag >= 0 else (before[-lag:], after[:lag])
        )
        return float(np.corrcoef(a, b)[0, 1])

    best = max(range(-6, 7), key=agreement)
    assert best == semitones


@pytest.mark.parametrize("factor", [0.8, 0.9, 1.1, 1.2])
def test_time_stretch_changes_the_duration_by_the_factor_not_the_pitch(factor):
    source = tone(500.0, seconds=2.0)
    stretched = time_stretch(source, factor)
    assert len(stretched) == round(len(source) * factor)
    assert dominant_frequency(stretched, RATE) == pytest.approx(500.0, rel=0.01)


def test_time_stretch_of_music_is_a_different_signal(music):
    stretched = time_stretch(music, 1.1)
    assert abs(len(stretched) / len(music) - 1.1) < 1e-3
    assert not np.allclose(stretched[: len(music)], music, atol=1e-3)


@pytest.mark.parametrize("level_db", [-30, -12, 0, 12, 30])
def test_white_noise_is_overlaid_at_the_level_asked_for(music, level_db):
    noisy = add_white_noise(music, level_db, seed=1)
    noise = noisy - music
    measured_snr = 20 * np.log10(rms(music) / rms(noise))
    assert measured_snr == pytest.approx(-level_db, abs=0.05)
    spectrum = np.abs(np.fft.rfft(noise))
    low, high = spectrum[: len(spectrum) // 2].mean(), spectrum[len(spectrum) // 2 :].mean()
    assert 0.9 < low / high < 1.1  # white: flat across the band


def test_noise_needs_a_non_silent_clip():
    with pytest.raises(AuditError, match="silent"):
        add_white_noise(np.zeros(RATE, dtype=np.float32), 0)


def test_mash_up_splices_the_two_clips_at_the_fraction():
    first, second = tone(300.0, 3.0), tone(700.0, 3.0)
    mixed = mash_up(first, second, 0.75)
    cut = int(0.75 * len(first))
    assert np.array_equal(mixed[:cut], first[:cut])
    assert np.array_equal(mixed[cut:], second[cut:])
    with pytest.raises(AuditError):
        mash_up(first, second[:-1], 0.5)


def test_a_stretched_case_is_one_clip_long_and_made_from_more_audio(music):
    clip = music[: 3 * RATE]
    case = Case(1, 0.0, clip, music)
    faster = perturbed(case, Perturbation("stretch", 0.8), RATE)
    assert len(faster) == len(clip)
    # 0.8: 3.75 s of the recording fill the 3-s clip; its first 2.4 s are not the clip's
    assert not np.allclose(faster, clip, atol=1e-3)
    assert perturbed(case, Perturbation("mashup_generated", 0.5), RATE) is None  # no output


# -- calibration ---------------------------------------------------------------------------------


def brute_force_pooled(vectors, ids, sample, top_n) -> np.ndarray:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    pooled = []
    for i in sample:
        sims = [float(unit[i] @ unit[j]) for j in range(len(unit)) if ids[j] != ids[i]]
        pooled += sorted(sims)[-top_n:]
    return np.asarray(pooled)


def brute_force(vectors, ids, sample, top_n):
    pooled = brute_force_pooled(vectors, ids, sample, top_n)
    return pooled.mean(), pooled.std()


def test_calibration_fits_the_top_neighbour_distribution_and_random_pairs():
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((8, 32))
    ids = np.repeat(np.arange(8), 12)
    vectors = centres[ids] + 0.7 * rng.standard_normal((len(ids), 32))
    config = CalibrationConfig(sample_clips=40, min_top=5, random_pairs_side=50, seed=4)
    result = calibrate(vectors, ids, config)

    sample = np.random.default_rng(4).choice(len(vectors), size=40, replace=False)
    mean, std = brute_force(vectors, ids, sample, top_n=5)
    assert result.top_n == 5 and result.sampled_clips == 40 and result.recording_count == 8
    assert result.mean == pytest.approx(mean, abs=1e-5)
    assert result.std == pytest.approx(std, abs=1e-5)
    raw = result.raw_thresholds  # the paper's Gaussian on the similarities
    assert raw["mean+1sigma"] == pytest.approx(mean + std, abs=1e-5)
    assert raw["mean+2sigma"] == pytest.approx(mean + 2 * std, abs=1e-5)
    assert raw["random"] < raw["mean"] < raw["mean+2sigma"]
    assert sum(result.histogram["top"]) == 40 * 5
    # the default fit: the same construction on atanh(similarity), mapped back
    pooled_z = np.arctanh(brute_force_pooled(vectors, ids, sample, top_n=5))
    z = result.thresholds
    assert result.fit == "fisher_z"
    assert z["mean"] == pytest.approx(np.tanh(pooled_z.mean()), abs=1e-5)
    assert z["mean+2sigma"] == pytest.approx(
        np.tanh(pooled_z.mean() + 2 * pooled_z.std()), abs=1e-5
    )
    assert z["random"] == raw["random"] < z["mean"] < z["mean+1sigma"] < z["mean+2sigma"] < 1.0
    paper = calibrate(
        vectors,
        ids,
        CalibrationConfig(sample_clips=40, min_top=5, random_pairs_side=50, seed=4, fit="raw"),
    )
    assert paper.thresholds == raw


def test_the_default_fit_keeps_thresholds_below_one_where_the_raw_fit_cannot():
    """Near neighbours close to 1 (skewed): the raw mean + 2 sigma is out of reach."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((6, 16))
    ids = np.repeat(np.arange(6), 20)
    vectors = centres[ids] * 0.2 + rng.standard_normal((len(ids), 16)) * 0.05 + 1.0
    fitted = calibrate(vectors, ids, CalibrationConfig(sample_clips=60, min_top=10))
    assert fitted.raw_thresholds["mean+2sigma"] > fitted.thresholds["mean+2sigma"]
    assert fitted.thresholds["mean+2sigma"] < 1.0


def test_top_neighbours_are_a_fraction_of_the_catalogue_with_a_floor():
    config = CalibrationConfig(top_fraction=0.002, min_top=10)
    assert config.top_n(5_000_000) == 10_000  # the paper's 10k of 5M
    assert config.top_n(3000) == 10
    assert config.top_n(4) == 4


def test_calibration_refuses_what_it_cannot_measure():
    with pytest.raises(AuditError, match="at least 2 recordings"):
        calibrate(np.ones((5, 4)), np.zeros(5))
    vectors = np.ones((4, 4))
    vectors[2] = 0
    with pytest.raises(AuditError, match="all zeros"):
        calibrate(vectors, np.array([1, 1, 2, 2]))


def test_threshold_names_and_numbers():
    thresholds = {"random": 0.1, "mean": 0.5, "mean+1sigma": 0.6, "mean+2sigma": 0.7}
    assert threshold_value(thresholds, "mean+2sigma") == 0.7
    assert threshold_value(thresholds, "0.93") == 0.93
    with pytest.raises(AuditError, match="unknown threshold"):
        threshold_value(thresholds, "mean+3sigma")
    with pytest.raises(AuditError, match="in \\[-1, 1\\]"):
        threshold_value(thresholds, "1.5")


# -- matching and tables -----------------------------------------------------------------------


def test_a_recording_scores_its_best_clip_pair_and_only_non_references_flag():
    hits = [
        ClipHit(0.0, 7, 12.0, 0.62),
        ClipHit(1.5, 7, 13.5, 0.97),
        ClipHit(0.0, 3, 0.0, 0.99),
        ClipHit(3.0, 5, 30.0, 0.40),
    ]
    matches = best_matches(hits, k=2, reference_ids=[3], training_ids=[7])
    assert [(m.recording_id, m.similarity) for m in matches] == [(3, 0.99), (7, 0.97)]
    assert matches[1].output_start == 1.5 and matches[1].recording_start == 13.5
    assert matches[0].is_reference and matches[1].in_training_set
    flagged = flagged_matches(matches, threshold=0.95)
    assert [m.recording_id for m in flagged] == [7]  # the reference at 0.99 is expected
    assert flagged_matches(matches, threshold=0.98) == []


def test_recall_and_threshold_tables():
    rows = recall_rows({Perturbation("pitch", 3): [1, 2, None, 7]}, ks=(1, 5, 10))
    assert rows[0]["top1"] == 0.25 and rows[0]["top5"] == 0.5 and rows[0]["top10"] == 0.75
    table = threshold_table([[0.96, 0.9], [0.8, 0.7]], [("a", 0.85), ("b", 0.95)], k=2)
    assert table[0]["top1_count"] == 1 and table[0]["top2_count"] == 2
    assert table[1]["top1_share"] == 0.5 and table[1]["top2_share"] == 0.25
