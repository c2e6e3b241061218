"""Model versions: trained only on training-consented recordings, with a manifest; withdrawn
from serving when training consent is revoked (by a setting that defaults to on)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from catalog.services.consent import consent_revoke
from generation.models import ModelVersion
from generation.selectors import model_version_standing
from tests.generation.conftest import TRAINED

pytestmark = pytest.mark.django_db


def test_training_manifest_lists_only_training_consented_recordings(studio):
    version = studio["model_version"]
    trained = studio["recordings"][:TRAINED]
    assert sorted(version.training_recording_ids) == sorted(r.pk for r in trained)
    entries = {e["id"]: e for e in version.training_manifest["recordings"]}
    for recording in trained:
        entry = entries[recording.pk]
        assert entry["content_sha256"] == recording.content_sha256
        assert entry["consent_version_ids"]  # the versions in force when it was trained
        assert entry["crops"] > 0 and entry["mean_crop_seconds"] > 0
        assert "padded_crops" in entry
    assert version.training_manifest["run"]["steps"] == 40
    assert version.is_active and version.encoder == studio["encoder"]


def test_train_generator_if_needed_reuses_an_up_to_date_model(studio, tmp_path):
    out = io.StringIO()
    call_command("train_generator", "--tiny", "--steps", "40", "--if-needed", stdout=out)
    assert "up to date" in out.getvalue()  # the studio model has exactly these inputs
    assert ModelVersion.objects.count() == 1

    out = io.StringIO()
    export = tmp_path / "export" / "tiny.pt"
    call_command("train_generator", "--tiny", "--steps", "20", "--export", str(export), stdout=out)
    assert f"trained on {TRAINED} recordings: 20 steps" in out.getvalue()
    manifest = json.loads(export.with_suffix(".manifest.json").read_text())
    assert len(manifest["recordings"]) == TRAINED
    assert ModelVersion.objects.filter(is_active=True).get().training_manifest == manifest


def test_a_changed_committed_checkpoint_replaces_the_version_installed_from_it(studio, tmp_path):
    """Same training inputs, new file (here: another sampler setting): --if-needed installs it
    as a new model version instead of calling the old one up to date."""
    import torch

    from generation.model.checkpoint import file_sha256, read_checkpoint
    from generation.services.models import model_version_activate

    export = tmp_path / "export" / "tiny.pt"
    call_command("train_generator", "--tiny", "--steps", "20", "--export", str(export),
                 stdout=io.StringIO())  # fmt: skip
    model_version_activate(model_version=studio["model_version"])  # other inputs (40 steps)
    args = ["train_generator", "--tiny", "--steps", "20", "--if-needed", "--committed", export]

    def run() -> str:
        out = io.StringIO()
        call_command(*args, stdout=out)
        return out.getvalue()

    def resave(cfg_scale: float) -> None:
        data = read_checkpoint(export)
        data["config"]["sampler"]["cfg_scale"] = cfg_scale
        torch.save(data, export)

    resave(4.0)  # a file of its own, not the exported version's
    assert "installed from tiny.pt" in run()
    first = ModelVersion.objects.get(is_active=True)
    assert first.checkpoint_sha256 == file_sha256(export)
    assert "up to date" in run()

    resave(5.0)
    said = run()
    assert "changed since" in said and "installed from tiny.pt" in said
    second = ModelVersion.objects.get(is_active=True)
    assert second.pk != first.pk and second.checkpoint_sha256 == file_sha256(export)
    assert second.training_manifest["fingerprint"] == first.training_manifest["fingerprint"]
    assert "up to date" in run()


def test_revoked_training_consent_withdraws_the_model(studio, settings, make_user):
    version = studio["model_version"]
    revoked = studio["recordings"][0]
    consent_revoke(
        actor=studio["member"], holder=studio["holder"], recording=revoked, uses=["training"]
    )
    standing = model_version_standing(model_version=version)
    assert standing.revoked_recording_ids == [revoked.pk] and standing.withdrawn

    client = APIClient()
    client.force_authenticate(make_user("maker"))
    body = {
        "references": [{"recording": studio["recordings"][4].pk, "level": "song"}],
        "distribution": "private",
        "seconds": 1.5,
    }
    refused = client.post("/api/generations/", body, format="json")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "no_servable_model"
    assert str(revoked.pk) in refused.json()["error"]["message"]
    listed = client.get("/api/generations/models/").json()["results"][0]
    assert listed["revoked_recordings"] == [revoked.pk] and listed["servable"] is False

    settings.GENERATION_REFUSE_REVOKED_MODELS = False
    assert client.post("/api/generations/", body, format="json").status_code == 201


def test_fine_tuning_starts_from_the_parent_and_records_its_lineage(studio, tmp_path):
    """--parent: the run starts from the parent's weights, keeps its normalisation and names
    it in the manifest; a parent that learned from audio no longer consented is refused."""
    from generation.model.checkpoint import file_sha256, load_generator

    parent = tmp_path / "export" / "parent.pt"
    call_command("train_generator", "--tiny", "--steps", "40", "--export", str(parent),
                 "--no-activate", stdout=io.StringIO())  # fmt: skip
    out = io.StringIO()
    call_command("train_generator", "--tiny", "--steps", "2", "--parent", str(parent),
                 "--learning-rate", "2e-4", "--warmup-steps", "1", stdout=out)  # fmt: skip
    child = ModelVersion.objects.get(is_active=True)
    settings_used = child.training_manifest["training_config"]
    assert (settings_used["learning_rate"], settings_used["warmup_steps"]) == (2e-4, 1)
    # the rate it ran at is not what it learned from: the same fingerprint, so a committed
    # fine-tune at a lower rate still installs on `make demo`; other steps are another run
    from catalog.retrieval.runtime import active_encoder_version
    from generation.model import GeneratorConfig, TrainConfig
    from generation.services.models import generator_training_recordings, training_fingerprint

    recordings, encoder = generator_training_recordings(), active_encoder_version()

    def fingerprint(**train):
        return training_fingerprint(
            recordings, encoder, GeneratorConfig.tiny(), TrainConfig.tiny(**train)
        )

    assert fingerprint(learning_rate=2e-4, warmup_steps=1) == fingerprint() != fingerprint(steps=3)
    lineage = child.training_manifest["parent"]
    assert lineage["checkpoint_sha256"] == file_sha256(parent) and lineage["steps"] == 40
    before, after = load_generator(parent, "cpu"), load_generator(child.checkpoint_path, "cpu")
    assert after.config.mel_mean == before.config.mel_mean  # the parent's normalisation
    # two small steps from the parent's weights, not from a fresh initialisation
    drift = max(
        float((a - b).abs().max())
        for a, b in zip(after.model.parameters(), before.model.parameters(), strict=True)
    )
    assert 0 < drift < 0.05

    consent_revoke(actor=studio["member"], holder=studio["holder"],
                   recording=studio["recordings"][0], uses=["training"])  # fmt: skip
    versions = ModelVersion.objects.count()
    with pytest.raises(CommandError, match="not consented to training today"):
        call_command("train_generator", "--tiny", "--steps", "2", "--parent", str(parent),
                     stdout=io.StringIO())  # fmt: skip
    assert ModelVersion.objects.count() == versions
