"""The audit's melody signal: basic-pitch note posteriors folded to pitch classes, a 2-D Fourier
magnitude that ignores key and position, and clear errors for audio it cannot read."""

import librosa
import numpy as np
import pytest

from catalog.encoders import MELODY_CARD, EncoderError, is_audio_only, load_encoder
from catalog.encoders.melody import (
    CHROMA_FRAMES,
    SAMPLE_RATE,
    WINDOW_SAMPLES,
    basic_pitch_model,
    chroma_sequence,
    fingerprint,
    note_posteriors,
)
from tests.catalog.retrieval_fixtures import theme_clip


def clip(name: str, offset: float) -> np.ndarray:
    return theme_clip(name, offset, sample_rate=SAMPLE_RATE)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("melody", MELODY_CARD)


def test_fingerprint_ignores_key_and_circular_position():
    rng = np.random.default_rng(0)
    sequence = rng.random((CHROMA_FRAMES, 12)).astype(np.float32)
    print_ = fingerprint(sequence)
    assert print_.shape == ((CHROMA_FRAMES // 2 + 1) * 12,)
    assert np.allclose(fingerprint(np.roll(sequence, 5, axis=1)), print_, atol=1e-5)  # key
    assert np.allclose(fingerprint(np.roll(sequence, 7, axis=0)), print_, atol=1e-5)  # time
    other = fingerprint(rng.random((CHROMA_FRAMES, 12)).astype(np.float32))
    assert not np.allclose(other, print_, atol=1e-2)


def test_note_posteriors_fold_to_the_played_pitch_class():
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    a4 = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)  # A: pitch class 9
    notes = note_posteriors(a4, basic_pitch_model())
    assert notes.shape == (2 * 172, 88)  # two 2-s windows, the last flush with the end
    chroma = chroma_sequence(notes)
    assert chroma.shape == (CHROMA_FRAMES, 12)
    assert int(chroma.sum(axis=0).argmax()) == 9


def test_a_transposed_clip_finds_its_source_among_other_recordings(encoder):
    assert is_audio_only(encoder) and encoder.version.startswith("basic-pitch-0.4.0-2dftm-")
    names = ["castle", "electro", "dungeon", "japanese", "greek"]
    sources = encoder.embed_audio(np.stack([clip(n, 30.0) for n in names]))
    assert np.allclose(np.linalg.norm(sources, axis=1), 1.0, atol=1e-5)
    shifted = [librosa.effects.pitch_shift(clip(n, 30.0), sr=SAMPLE_RATE, n_steps=2) for n in names]
    similarity = encoder.embed_audio(np.stack(shifted)) @ sources.T
    assert list(similarity.argmax(axis=1)) == list(range(len(names)))


def test_bad_input_is_refused(encoder, tmp_path):
    with pytest.raises(EncoderError, match="at least 1.99 s"):
        encoder.embed_audio(np.zeros((1, WINDOW_SAMPLES - 1), dtype=np.float32))
    with pytest.raises(EncoderError, match="non-finite"):
        encoder.embed_audio(np.full((1, 3 * SAMPLE_RATE), np.inf, dtype=np.float32))
    silence = encoder.embed_audio(np.zeros((1, 3 * SAMPLE_RATE), dtype=np.float32))
    assert np.all(np.isfinite(silence))  # a finite vector; the audit's calibration judges it
    with pytest.raises(EncoderError, match="audio-only"):
        encoder.embed_texts(["a tune"])
    card = tmp_path / "card.json"
    card.write_text("[")
    with pytest.raises(EncoderError, match="cannot read melody card"):
        load_encoder("melody", card)
