"""Pretrained audio-only encoders (musicnn's tagger, aisfx, the audit's default) in the similarity
audit (issue 18, part 1): the audit code is the same, only AUDIT_ENCODER names another version;
an audio-only encoder never becomes retrieval's encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attribution.audit import CalibrationConfig
from attribution.selectors import similarity_audit_for_generation
from attribution.services.audit import (
    audit_encoder_version,
    catalogue_clips_embed,
    clip_calibrate,
    similarity_audit_run_here,
)
from catalog.encoders import AUDIO_ONLY_CARDS, AudioTextEncoder, EncoderError, load_encoder
from catalog.encoders import MUSICNN_CARD as CARD
from catalog.models import EncoderVersion
from catalog.services.encoders import encoder_activate, encoder_register
from config.exceptions import InvalidInput, NotFound
from tests.attribution.test_audit import audit_settings, copy_into_output, generated  # noqa: F401
from tests.generation.conftest import embedded_catalogue, pricing, studio, tiny_checkpoint  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("one_torch_thread")]


def test_the_card_loads_an_audio_only_encoder_of_unit_512_d_vectors():
    encoder = load_encoder("musicnn", CARD)
    assert isinstance(encoder, AudioTextEncoder) and encoder.audio_only
    assert encoder.version.startswith("MTT_musicnn-penultimate-")
    rng = np.random.default_rng(0)
    clips = (0.1 * rng.standard_normal((3, 3 * encoder.sample_rate))).astype(np.float32)
    vectors = encoder.embed_audio(clips)
    assert vectors.shape == (3, 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.all(vectors[:, 200:] == 0)  # the 200-d penultimate layer, zero-padded
    with pytest.raises(EncoderError, match="audio-only"):
        encoder.embed_texts(["calm strings"])
    with pytest.raises(EncoderError, match="too short"):
        encoder.embed_audio(clips[:, : encoder.sample_rate])  # 1 s: not one patch


def test_an_audio_only_encoder_is_never_retrievals_encoder():
    with pytest.raises(InvalidInput, match="audio-only"):
        encoder_register(name="musicnn", checkpoint_path=CARD, activate=True)
    assert not EncoderVersion.objects.exists()
    version = encoder_register(name="musicnn", checkpoint_path=CARD)
    assert version.config["audio_only"] is True and not version.is_active
    with pytest.raises(InvalidInput, match="audio-only"):
        encoder_activate(encoder_version=version)
    version.refresh_from_db()
    assert not version.is_active


@pytest.mark.parametrize(
    ("card", "message"),
    [
        ({"model": "MTT_resnet"}, "unknown musicnn model"),
        ({"model": "MTT_vgg", "layer": "max_pool"}, "unknown layer"),
    ],
)
def test_a_bad_card_is_refused_and_nothing_is_stored(tmp_path, card, message):
    path = tmp_path / "card.json"
    path.write_text(json.dumps(card))
    with pytest.raises(InvalidInput, match=message):
        encoder_register(name="musicnn", checkpoint_path=path)
    assert not EncoderVersion.objects.exists()


@pytest.mark.parametrize("name", ["musicnn", "aisfx"])
def test_a_pretrained_encoder_audits_an_output_and_flags_the_recording_it_copies(
    studio,  # noqa: F811
    audit_settings,  # noqa: F811
    make_user,
    name,
):
    version = encoder_register(name=name, checkpoint_path=AUDIO_ONLY_CARDS[name])
    audit_settings.AUDIT_ENCODER = str(version)
    counts = catalogue_clips_embed()
    assert counts["embedded"] == len(studio["recordings"]) and counts["failed"] == 0
    calibration = clip_calibrate(config=CalibrationConfig(sample_clips=200))
    assert calibration.encoder_id == version.pk

    generation = generated(studio, make_user("maker"))
    copied = studio["recordings"][0]  # in the training set, not a reference
    copy_into_output(generation, copied, offset=3.0)
    audit = similarity_audit_run_here(generation_ref=generation.ref)

    assert audit.status == "done", audit.failure_reason
    assert audit.encoder_id == version.pk and audit.flagged
    top = similarity_audit_for_generation(generation_ref=generation.ref).matches[0]
    assert top.recording_id == copied.pk and top.similarity > 0.99
    assert top.recording_start_seconds - top.output_start_seconds == pytest.approx(3.0)


def test_the_default_audit_encoder_says_how_to_register_it_when_missing(settings):
    settings.AUDIT_ENCODER = "aisfx"  # the product's default (config/settings/base.py)
    with pytest.raises(NotFound, match="register_encoder aisfx catalog/encoders/pretrained/aisfx"):
        audit_encoder_version()
    version = encoder_register(name="aisfx", checkpoint_path=AUDIO_ONLY_CARDS["aisfx"])
    assert audit_encoder_version() == version
    settings.AUDIT_ENCODER = "musicnn"  # the other pretrained candidate names its own card
    with pytest.raises(NotFound, match="register_encoder musicnn catalog/encoders/pretrained"):
        audit_encoder_version()
