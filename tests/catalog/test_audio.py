"""Audio decoding, verification and descriptors (plain modules, no database)."""

import numpy as np
import pytest
import soundfile as sf

from catalog.audio.analysis import analyse_file
from catalog.audio.decoding import AudioDecodeError, probe_and_verify
from catalog.audio.descriptors import TagRules, derive_tags, describe, estimate_key
from catalog.audio.tags import read_tags
from tests.conftest import REAL_MP3, REAL_OGG, excerpt_of, require_real_audio

RATE = 22_050


def tone(frequencies, seconds=6.0, rate=RATE):
    t = np.arange(int(seconds * rate)) / rate
    return sum(np.sin(2 * np.pi * f * t) for f in frequencies).astype(np.float32) / len(frequencies)


def test_tempo_of_a_click_track_is_measured():
    clicks = np.zeros(12 * RATE, dtype=np.float32)
    period = int(RATE * 60 / 120)  # 120 BPM
    for start in range(0, len(clicks) - 200, period):
        clicks[start : start + 200] = np.hanning(200) * np.random.default_rng(start).normal(
            size=200
        )
    descriptors = describe(clicks, RATE)
    assert descriptors.tempo_bpm == pytest.approx(120, abs=4)


@pytest.mark.parametrize(
    "chords, key, mode",
    [
        # C major: C-E-G, F-A-C, G-B-D, C-E-G
        (
            [
                (261.6, 329.6, 392.0),
                (349.2, 440.0, 523.3),
                (392.0, 493.9, 587.3),
                (261.6, 329.6, 392.0),
            ],
            "C",
            "major",
        ),
        # A minor: A-C-E, D-F-A, E-G#-B, A-C-E
        (
            [
                (220.0, 261.6, 329.6),
                (293.7, 349.2, 440.0),
                (329.6, 415.3, 493.9),
                (220.0, 261.6, 329.6),
            ],
            "A",
            "minor",
        ),
    ],
)
def test_key_and_mode_from_chroma(chords, key, mode):
    audio = np.concatenate([tone(chord, seconds=2.0) for chord in chords])
    descriptors = describe(audio, RATE)
    assert (descriptors.key, descriptors.mode) == (key, mode)


def test_key_estimate_rotates_with_transposition():
    c_major = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], dtype=float)
    assert estimate_key(c_major)[:2] == ("C", "major")
    assert estimate_key(np.roll(c_major, 2))[:2] == ("D", "major")


def test_brightness_and_loudness_follow_the_signal():
    dull = describe(tone([110.0]) * 0.05, RATE)
    bright = describe(tone([3000.0, 5000.0]) * 0.8, RATE)
    assert bright.brightness_hz > 2000 > 300 > dull.brightness_hz
    assert bright.loudness_dbfs > dull.loudness_dbfs + 15
    assert dull.low_end_ratio > 0.9 and "bass" in dull.instruments


def test_tag_rules_map_arousal_and_valence_to_moods():
    common = dict(percussive_ratio=0.4, low_end_ratio=0.1, rules=TagRules())
    moods, instruments = derive_tags(
        tempo_bpm=150, mode="major", brightness_hz=2500, loudness_dbfs=-10, **common
    )
    assert moods[:2] == ("energetic", "happy") and "bright" in moods and instruments == ("drums",)
    moods, _ = derive_tags(
        tempo_bpm=70, mode="minor", brightness_hz=800, loudness_dbfs=-30, percussive_ratio=0.05,
        low_end_ratio=0.1, rules=TagRules(),
    )  # fmt: skip
    assert moods == ("sad", "melancholic", "dark")


def test_real_ogg_and_mp3_decode_completely():
    require_real_audio(REAL_OGG, REAL_MP3)
    for path, fmt in ((REAL_OGG, "ogg"), (REAL_MP3, "mp3")):
        probe = probe_and_verify(path)
        assert probe.audio_format == fmt
        assert probe.duration_seconds == pytest.approx(sf.info(str(path)).duration, rel=0.01)


def test_analysis_of_a_real_recording(tmp_path):
    require_real_audio(REAL_OGG)
    analysis = analyse_file(REAL_OGG, analysis_seconds=15)
    assert len(analysis.sha256) == 64
    assert 60 < analysis.descriptors.tempo_bpm < 200
    assert analysis.descriptors.mode in {"major", "minor"}
    assert analysis.descriptors.moods  # every recording gets at least one mood


def test_flac_and_wav_written_from_real_audio_are_accepted(tmp_path):
    require_real_audio(REAL_OGG)
    for suffix in (".flac", ".wav"):
        probe = probe_and_verify(excerpt_of(REAL_OGG, tmp_path / f"clip{suffix}", seconds=5))
        assert probe.duration_seconds == pytest.approx(5.0, abs=0.01)


def test_truncated_ogg_is_rejected(tmp_path):
    require_real_audio(REAL_OGG)
    truncated = tmp_path / "truncated.ogg"
    truncated.write_bytes(REAL_OGG.read_bytes()[:400_000])
    with pytest.raises(AudioDecodeError, match="truncated"):
        probe_and_verify(truncated)


def test_truncated_flac_is_rejected(tmp_path):
    require_real_audio(REAL_OGG)
    flac = excerpt_of(REAL_OGG, tmp_path / "clip.flac", seconds=5)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    with pytest.raises(AudioDecodeError):
        probe_and_verify(cut)


@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("noise.wav", bytes(range(256)) * 20, "cannot decode"),
        ("notes.mp3", b"these are liner notes, not audio\n" * 50, "cannot decode"),
        ("cover.png", b"\x89PNG\r\n", "unsupported file type"),
    ],
)
def test_files_that_are_not_audio_are_rejected(tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioDecodeError, match=fragment):
        probe_and_verify(path)


def test_silent_file_is_rejected(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(str(path), np.zeros(RATE * 3, dtype=np.float32), RATE)
    with pytest.raises(AudioDecodeError, match="silence"):
        probe_and_verify(path)


def test_tags_are_read_and_missing_tags_are_empty(tmp_path):
    require_real_audio(REAL_OGG)
    wesnoth = tmp_path / "tagged.ogg"
    wesnoth.write_bytes(REAL_OGG.read_bytes())
    import mutagen

    tagged = mutagen.File(str(wesnoth), easy=True)
    tagged["title"], tagged["artist"], tagged["date"], tagged["isrc"] = (
        "Song",
        "Band",
        "2007-05-01",
        "us-rc1-76-07839",
    )
    tagged.save()
    tags = read_tags(wesnoth)
    assert (tags.title, tags.artist, tags.year, tags.isrc) == ("Song", "Band", 2007, "USRC17607839")
    assert read_tags(tmp_path / "missing.ogg").title == ""
