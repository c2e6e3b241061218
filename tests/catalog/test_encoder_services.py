"""Encoder versions: trained only on recordings opted in to training, manifest, reuse."""

import dataclasses
import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from catalog.models import CurrentConsent, EncoderVersion
from catalog.services.consent import consent_grant, consent_revoke
from catalog.services.encoders import (
    encoder_install_committed,
    encoder_register,
    encoder_train,
    encoder_training_recordings,
    fits_consented_audio,
)
from config.exceptions import InvalidInput
from tests.catalog.retrieval_fixtures import TINY_MODEL, TINY_TRAINING

pytestmark = pytest.mark.django_db
FAST = dataclasses.replace(TINY_TRAINING, steps=3)


def grant_training(catalogue, recordings):
    for recording in recordings:
        consent_grant(
            actor=catalogue["member"],
            holder=catalogue["holder"],
            recording=recording,
            uses=["training"],
        )


def test_encoder_trains_only_on_recordings_opted_in_to_training(
    embedded_catalogue, settings, tmp_path
):
    settings.ENCODER_CHECKPOINT_DIR = tmp_path
    recordings = embedded_catalogue["recordings"]
    with pytest.raises(InvalidInput, match="only 0 recordings"):
        encoder_train(model_config=TINY_MODEL, training_config=FAST)
    grant_training(embedded_catalogue, recordings[:4])

    version = encoder_train(model_config=TINY_MODEL, training_config=FAST)

    manifest = version.training_manifest
    assert {r["id"] for r in manifest["recordings"]} == {r.pk for r in recordings[:4]}
    for entry in manifest["recordings"]:
        current = CurrentConsent.objects.get(recording_id=entry["id"])
        assert entry["consent_version_ids"] == [current.version_id]
        assert current.version.training
        assert isinstance(entry["pseudo_tags"], list)  # musicnn heard something, or nothing
    assert any(entry["pseudo_tags"] for entry in manifest["recordings"])
    cached = json.loads((Path(settings.ENCODER_CHECKPOINT_DIR) / "pseudo-tags.json").read_text())
    assert len(cached) == 4  # the next run reads them instead of tagging again
    assert version.is_active and version.name == "default-clap"
    assert EncoderVersion.objects.filter(is_active=True).count() == 1
    assert manifest["run"]["steps_done"] == 3
    assert "clip_to_recording_recall_at_1" in version.quality or "note" in version.quality


def test_committed_checkpoint_is_reused_only_for_the_same_consented_audio(
    embedded_catalogue, tmp_path
):
    recordings = embedded_catalogue["recordings"]
    grant_training(embedded_catalogue, recordings[:4])
    trained = encoder_train(model_config=TINY_MODEL, training_config=FAST)
    committed = tmp_path / "committed.pt"
    committed.write_bytes(Path(trained.checkpoint_path).read_bytes())
    committed.with_suffix(".manifest.json").write_text(json.dumps(trained.training_manifest))

    reused = encoder_install_committed(
        checkpoint=committed, model_config=TINY_MODEL, training_config=FAST
    )
    assert reused is not None and reused.version == trained.version

    # one recording's training consent is revoked: the committed encoder no longer fits
    consent_revoke(
        actor=embedded_catalogue["member"],
        holder=embedded_catalogue["holder"],
        recording=recordings[0],
        uses=["training"],
    )
    assert (
        encoder_install_committed(
            checkpoint=committed, model_config=TINY_MODEL, training_config=FAST
        )
        is None
    )


def test_registering_a_bad_checkpoint_changes_nothing(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(InvalidInput, match="not a readable"):
        encoder_register(name="default-clap", checkpoint_path=bad, activate=True)
    assert not EncoderVersion.objects.exists()


def test_embed_catalogue_command_explains_a_missing_encoder():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no active encoder"):
        call_command("embed_catalogue")


def test_evaluate_encoder_recomputes_the_held_out_report(embedded_catalogue, settings, tmp_path):
    settings.ENCODER_CHECKPOINT_DIR = tmp_path
    grant_training(embedded_catalogue, embedded_catalogue["recordings"][:4])
    trained = encoder_train(
        model_config=TINY_MODEL, training_config=dataclasses.replace(FAST, pseudo_tags=False)
    )
    out = io.StringIO()
    call_command("evaluate_encoder", str(trained), "--json", stdout=out)
    report = json.loads(out.getvalue())
    # the test catalogue's excerpts are short, so both say the same about their held-out tails
    assert report == {k: v for k, v in trained.quality.items() if k in report}
    assert set(report) == set(trained.quality) and report
    with pytest.raises(CommandError, match="no encoder version default-clap@nope"):
        call_command("evaluate_encoder", "default-clap@nope")


def test_fine_tuning_an_encoder_starts_from_its_parent_and_records_the_lineage(
    embedded_catalogue, settings, tmp_path
):
    """--parent: the run starts from the parent's weights and names it in the manifest; a
    parent of another config, or one that learned from audio no longer consented, is refused."""
    from catalog.encoders import load_encoder

    settings.ENCODER_CHECKPOINT_DIR = tmp_path
    recordings = embedded_catalogue["recordings"]
    grant_training(embedded_catalogue, recordings[:4])
    fast = dataclasses.replace(FAST, pseudo_tags=False)
    parent = encoder_train(model_config=TINY_MODEL, training_config=fast)
    parent_path = Path(parent.checkpoint_path)

    # another seed than the parent's: a fresh start would initialise other weights
    one_step = dataclasses.replace(fast, steps=1, learning_rate=1e-5, seed=1)
    child = encoder_train(
        model_config=TINY_MODEL, training_config=one_step, parent_checkpoint=parent_path
    )
    lineage = child.training_manifest["parent"]
    assert lineage["checkpoint"] == parent_path.name and lineage["steps"] == 3

    def weights(version) -> dict:  # parameters, not batch-norm statistics
        tower = load_encoder("default-clap", Path(version.checkpoint_path)).audio_tower
        return dict(tower.named_parameters())

    before, after = weights(parent), weights(child)
    drift = max(float((after[k] - before[k]).abs().max()) for k in before)
    assert 0 < drift < 0.01  # one small step from the parent, not a fresh initialisation
    fresh = weights(encoder_train(model_config=TINY_MODEL, training_config=one_step))
    assert max(float((fresh[k] - before[k]).abs().max()) for k in before) > 0.05

    # committed, the child counts as trained on today's audio with the parent's (default)
    # settings, and installs with its lineage; with other settings it does not
    consented = encoder_training_recordings()
    assert fits_consented_audio(child.training_manifest, consented, TINY_MODEL, fast)
    assert not fits_consented_audio(child.training_manifest, consented, TINY_MODEL, one_step)
    installed = encoder_install_committed(
        checkpoint=Path(child.checkpoint_path), model_config=TINY_MODEL, training_config=fast
    )
    assert installed.training_manifest["parent"]["checkpoint"] == parent_path.name
    assert installed.training_manifest["fingerprint"] == child.training_manifest["fingerprint"]

    versions = EncoderVersion.objects.count()
    other = dataclasses.replace(TINY_MODEL, channels=(8, 16, 16))
    with pytest.raises(InvalidInput, match="another model config"):
        encoder_train(model_config=other, training_config=one_step, parent_checkpoint=parent_path)
    consent_revoke(
        actor=embedded_catalogue["member"],
        holder=embedded_catalogue["holder"],
        recording=recordings[0],
        uses=["training"],
    )
    grant_training(embedded_catalogue, recordings[4:5])
    with pytest.raises(InvalidInput, match="not consented to training today"):
        encoder_train(
            model_config=TINY_MODEL, training_config=one_step, parent_checkpoint=parent_path
        )
    assert EncoderVersion.objects.count() == versions
    consented = encoder_training_recordings()
    assert not fits_consented_audio(child.training_manifest, consented, TINY_MODEL, fast)
