"""aiSFX's pretrained embedding as an audit encoder: the port matches the package's network, the
input follows its spectrogram, clips are cut into its training blocks, bad input is refused."""

import librosa
import numpy as np
import pytest
import torch

from catalog.encoders import AISFX_CARD, EncoderError, is_audio_only, load_encoder
from catalog.encoders.aisfx_audit import (
    BLOCK_FRAMES,
    MEL_BINS,
    MIN_SECONDS,
    SAMPLE_RATE,
    aisfx_checkpoint,
    blocks,
    load_network,
    log_mel,
)
from tests.catalog.retrieval_fixtures import theme_clip


def clip(name: str, offset: float) -> np.ndarray:
    return theme_clip(name, offset, sample_rate=SAMPLE_RATE)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("aisfx", AISFX_CARD)


def test_port_matches_the_packages_own_network():
    from aisfx.models.cnn2d import CrossNet, EmbeddingNet  # the wheel's reference code

    weights, datasets = torch.load(aisfx_checkpoint(), map_location="cpu", weights_only=False)
    reference = CrossNet(EmbeddingNet("max", 3, 1, 64), datasets, "cpu")
    reference.load_state_dict(weights)
    reference.eval()
    batch = torch.from_numpy(blocks(log_mel(clip("castle", 20.0))))
    with torch.inference_mode():
        ours, theirs = load_network(aisfx_checkpoint())(batch), reference.get_embedding(batch)
    assert ours.shape == (2, 512)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert float(ours.abs().max()) > 0.1  # not a dead network


def test_log_mel_and_blocks_of_a_three_second_clip():
    spectrogram = log_mel(clip("castle", 20.0))
    assert spectrogram.shape == (130, MEL_BINS)  # (frames, mels), as the network expects
    assert spectrogram.min() >= 0.0 and spectrogram.max() <= 1.2
    cut = blocks(spectrogram)
    assert cut.shape == (2, BLOCK_FRAMES, MEL_BINS)
    assert np.array_equal(cut[1], spectrogram[-BLOCK_FRAMES:])  # the last block ends the clip
    assert np.allclose(log_mel(0.25 * clip("castle", 20.0)), spectrogram, atol=1e-5)  # level


def test_embeddings_are_unit_vectors_and_survive_a_semitone(encoder):
    assert is_audio_only(encoder) and encoder.version.startswith("aisfx-0.1.2-")
    names = ["castle", "electro", "dungeon", "japanese"]
    originals = encoder.embed_audio(np.stack([clip(n, 30.0) for n in names]))
    assert originals.shape == (4, 512)
    assert np.allclose(np.linalg.norm(originals, axis=1), 1.0, atol=1e-5)
    shifted = np.stack(
        [librosa.effects.pitch_shift(clip(n, 30.0), sr=SAMPLE_RATE, n_steps=1) for n in names]
    )
    similarity = encoder.embed_audio(shifted) @ originals.T
    assert list(similarity.argmax(axis=1)) == [0, 1, 2, 3]  # each finds its own source


def test_bad_input_is_refused(encoder, tmp_path):
    with pytest.raises(EncoderError, match=f"at least {MIN_SECONDS:.2f} s"):
        encoder.embed_audio(np.zeros((1, SAMPLE_RATE), dtype=np.float32))
    silence = encoder.embed_audio(np.zeros((1, 3 * SAMPLE_RATE), dtype=np.float32))
    assert np.all(np.isfinite(silence)) and np.isclose(np.linalg.norm(silence), 1.0)
    with pytest.raises(EncoderError, match="non-finite"):
        encoder.embed_audio(np.full((1, 3 * SAMPLE_RATE), np.nan, dtype=np.float32))
    with pytest.raises(EncoderError, match=r"expected \(n, samples\)"):
        encoder.embed_audio(np.zeros(3 * SAMPLE_RATE, dtype=np.float32))
    with pytest.raises(EncoderError, match="audio-only"):
        encoder.embed_texts(["calm strings"])
    garbage = tmp_path / "checkpoint.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderError, match="cannot read aisfx checkpoint"):
        load_network(garbage)
    foreign = tmp_path / "foreign.pth"
    torch.save(({"embedding_net.conv_block1.conv1.weight": torch.zeros(3)}, {}), foreign)
    with pytest.raises(EncoderError, match="does not fit the network"):
        load_network(foreign)
    card = tmp_path / "card.json"
    card.write_text("{not json")
    with pytest.raises(EncoderError, match="cannot read aisfx card"):
        load_encoder("aisfx", card)
