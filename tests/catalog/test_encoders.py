"""The encoder protocol, the default CLAP encoder and its training, without the database."""

import random

import numpy as np
import pytest
import torch

from catalog.encoders import (
    AudioTextEncoder,
    EncoderError,
    WindowSpec,
    load_encoder,
    split_windows,
)
from catalog.encoders.captions import canonical_caption, sampled_caption
from catalog.encoders.default_clap import DefaultClapConfig, read_checkpoint
from catalog.encoders.evaluation import PROMPT_PROBES
from tests.catalog.retrieval_fixtures import TINY_MODEL


def test_split_windows_covers_the_audio_and_pads_the_tail():
    rate = 1000
    windows = split_windows(np.ones(25_500, dtype=np.float32), rate, WindowSpec(10, 10, 2))
    assert [start for start, _ in windows] == [0.0, 10.0, 20.0]
    assert all(len(w) == 10_000 for _, w in windows)
    assert windows[-1][1][5_500:].sum() == 0  # zero padding after the real 5.5 s
    short_tail = split_windows(np.ones(21_000, dtype=np.float32), rate, WindowSpec(10, 10, 2))
    assert [start for start, _ in short_tail] == [0.0, 10.0]  # a 1-s tail is dropped
    with pytest.raises(EncoderError, match="at least 2"):
        split_windows(np.ones(1_000, dtype=np.float32), rate, WindowSpec(10, 10, 2))


def test_captions_say_only_what_the_metadata_holds():
    metadata = {"genre": "Electronic", "subgenre": "Ambient", "moods": ["calm"],
                "instruments": ["drums"], "tempo_bpm": 84.0, "mode": "minor"}  # fmt: skip
    caption = canonical_caption(metadata)
    for fact in ("calm", "ambient", "electronic", "slow", "84 BPM", "minor", "drums"):
        assert fact in caption
    assert canonical_caption({}) == "music"
    sampled = {sampled_caption(metadata, random.Random(seed)) for seed in range(20)}
    assert len(sampled) > 5 and all("major" not in s for s in sampled)


def test_default_encoder_loads_from_its_checkpoint_and_embeds_audio_and_text(tiny_checkpoint):
    encoder = load_encoder("default-clap", tiny_checkpoint)
    assert isinstance(encoder, AudioTextEncoder)
    assert encoder.sample_rate == 16_000 and encoder.window_seconds == 10.0
    rng = np.random.default_rng(0)
    audio = encoder.embed_audio(rng.normal(0, 0.1, (3, 160_000)).astype(np.float32))
    text = encoder.embed_texts(["calm ambient music", "fast energetic rock with drums"])
    assert audio.shape == (3, 512) and text.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(audio, axis=1), 1, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1, atol=1e-4)
    assert not np.allclose(text[0], text[1])
    # the checkpoint carries its config: the model is rebuilt exactly as trained
    stored = read_checkpoint(tiny_checkpoint)
    assert DefaultClapConfig.from_dict(stored["config"]) == TINY_MODEL
    assert torch.equal(
        encoder.audio_tower.state_dict()["fc.weight"].half().cpu(),
        stored["audio_tower"]["fc.weight"],
    )


def test_an_embedding_does_not_depend_on_what_it_is_batched_with(tiny_checkpoint):
    """The log-mel's dynamic-range floor is each item's own: a quiet window embedded beside
    a loud one is the same vector as embedded alone (it was not, when the floor followed the
    loudest item of the batch)."""
    encoder = load_encoder("default-clap", tiny_checkpoint)
    rng = np.random.default_rng(1)
    t = np.arange(160_000) / 16_000
    quiet = (1e-4 * np.sin(2 * np.pi * 220 * t) + rng.normal(0, 1e-7, t.size)).astype(np.float32)
    loud = rng.normal(0, 0.5, t.size).astype(np.float32)
    alone = encoder.embed_audio(quiet[None])[0]
    batched = encoder.embed_audio(np.stack([loud, quiet]))[1]
    assert float(alone @ batched) > 0.9999


def test_training_reports_held_out_quality(tiny_checkpoint):
    quality = read_checkpoint(tiny_checkpoint)["extra"]["quality"]
    assert quality["held_out_clips"] > 0
    for key in ("text_to_audio_recall_at_1", "text_to_audio_recall_at_10",
                "clip_to_recording_recall_at_1"):  # fmt: skip
        assert 0.0 <= quality[key] <= 1.0
    assert quality["clip_to_recording_chance_at_1"] == pytest.approx(1 / 6)
    # prompts the catalogue facts do not spell out, judged by the genre of the top 5 clips
    assert set(quality["prompt_probes"]) == {prompt for prompt, _ in PROMPT_PROBES}
    assert 0.0 <= quality["prompt_probe_precision_at_5"] <= 1.0


def test_bad_checkpoints_and_inputs_are_refused(tmp_path, tiny_checkpoint):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderError, match="not a readable"):
        load_encoder("default-clap", garbage)
    with pytest.raises(EncoderError, match="not found"):
        load_encoder("default-clap", tmp_path / "missing.pt")
    with pytest.raises(EncoderError, match="unknown encoder"):
        load_encoder("no-such-encoder", tiny_checkpoint)
    with pytest.raises(EncoderError, match="unknown encoder config keys"):
        DefaultClapConfig.from_dict({"layers": 3})
    encoder = load_encoder("default-clap", tiny_checkpoint)
    with pytest.raises(EncoderError, match="NaN"):
        encoder.embed_audio(np.full((1, 160_000), np.nan, dtype=np.float32))
    with pytest.raises(EncoderError, match="no texts"):
        encoder.embed_texts([])
