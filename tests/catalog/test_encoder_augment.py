"""Augmented training views and pseudo-tag captions of the default encoder."""

from __future__ import annotations

import importlib.util
import random

import numpy as np
import pytest
import torch

from catalog.encoders import EncoderError
from catalog.encoders.augment import (
    AugmentSettings,
    add_noise,
    speed_variant,
    splice,
    stretch_crop,
)
from catalog.encoders.captions import canonical_caption, sampled_caption
from catalog.encoders.pseudo_tags import pseudo_tags
from catalog.encoders.training import TrainingConfig
from tests.catalog.test_musicnn import ORCHESTRAL_OGG, excerpt
from tests.conftest import require_real_audio

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_speed_variant_raises_the_pitch_by_the_factor():
    rate = 16_000
    tone = np.sin(2 * np.pi * 440 * np.arange(rate * 2) / rate).astype(np.float32)
    factor = 2 ** (1 / 12)
    faster = speed_variant(tone, rate, factor)
    assert len(faster) == pytest.approx(len(tone) / factor, abs=2)
    spectrum = np.abs(np.fft.rfft(faster))
    peak = np.argmax(spectrum) * rate / len(faster)
    assert peak == pytest.approx(440 * factor, abs=2)  # 466 Hz: one semitone up


def test_settings_list_speed_variants_and_refuse_bad_values():
    assert len(AugmentSettings(max_semitones=2).speed_factors) == 4
    assert AugmentSettings(max_semitones=0).speed_factors == ()
    with pytest.raises(EncoderError):
        AugmentSettings(probability=1.5)
    with pytest.raises(EncoderError):
        AugmentSettings(noise_db_min=0, noise_db_max=-10)


def test_stretch_noise_and_splice_change_a_crop_as_they_say():
    rng = random.Random(0)
    ramp = torch.arange(400, dtype=torch.float32)[:, None].repeat(1, 8)  # frame index per bin
    stretched = stretch_crop(ramp, end=400, frames=100, factor=1.2, rng=rng)
    assert stretched.shape == (100, 8)
    covered = float(stretched[-1, 0] - stretched[0, 0])
    assert covered == pytest.approx(119, abs=1.5)  # 120 source frames squeezed into 100
    assert stretch_crop(ramp, end=50, frames=100, factor=1.2, rng=rng) is None

    quiet = torch.full((100, 8), -60.0)
    noise = torch.zeros(120, 8)  # 0 dB in every bin
    louder = add_noise(quiet, noise, level_db=-6, top_db=80)
    gained = 10 * np.log10(1 + 10 ** (-6 / 10))  # power sum of the crop and noise 6 dB under
    assert torch.allclose(louder, torch.full_like(quiet, -60 + gained), atol=1e-3)

    other = torch.ones(100, 8)
    spliced = splice(torch.zeros(100, 8), other, 0.25, at_start=False)
    assert float(spliced[:75].abs().sum()) == 0 and bool((spliced[75:] == 1).all())


def test_training_config_round_trips_and_refuses_unknown_augment_keys():
    config = TrainingConfig(augment=AugmentSettings(max_semitones=1))
    assert TrainingConfig.from_dict(config.to_dict()) == config
    assert TrainingConfig.from_dict({**config.to_dict(), "augment": None}).augment is None
    with pytest.raises(EncoderError, match="augment"):
        TrainingConfig.from_dict({"augment": {"pitch": 3}})


def test_pseudo_tags_go_into_sampled_captions_never_the_canonical_one():
    metadata = {"genre": "Classical", "moods": ["calm"], "tags": ["strings", "violin"]}
    assert "strings" not in canonical_caption(metadata)
    assert canonical_caption(metadata) == canonical_caption({**metadata, "tags": []})
    sampled = {sampled_caption(metadata, random.Random(seed)) for seed in range(30)}
    assert any("strings and violin" in caption for caption in sampled)


@pytest.mark.skipif(importlib.util.find_spec("musicnn") is None, reason="musicnn not installed")
def test_pseudo_tags_of_orchestral_music_name_what_it_is():
    require_real_audio(ORCHESTRAL_OGG)
    from catalog.encoders.musicnn import MusicnnEmbedder

    audio, rate = excerpt(ORCHESTRAL_OGG, 20.0, 30.0)
    tags = pseudo_tags(audio, rate, MusicnnEmbedder("MTT_musicnn"))
    assert 1 <= len(tags) <= 4 and len(set(tags)) == len(tags)
    assert {"classical", "strings", "violin"} & set(tags)
    assert not {"techno", "electronic", "classic"} & set(tags)  # "classic" merges into "classical"
