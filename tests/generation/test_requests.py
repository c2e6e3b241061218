"""Generation requests end to end on a tiny model: verification at submission and at worker
start, the four levels, idempotency, provenance, the attribution log and the fee."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from rest_framework.test import APIClient

from attribution_log.models import AttributionRecord
from attribution_log.selectors import attribution_chain_verify
from catalog.services.consent import consent_revoke
from generation import provenance
from generation.models import GenerationRequest
from generation.services.outputs import signing_credentials
from generation.services.running import generation_run
from royalties.models import LedgerEntry, LedgerTransaction
from tests.generation.conftest import user_track, wav_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def maker(make_user):
    return make_user("music-maker")


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def two_references(studio, level="song", role="style"):
    first, second = studio["recordings"][4], studio["recordings"][5]
    return [
        {"recording": first.pk, "level": level, "role": role, "weight": 2.0},
        {"recording": second.pk, "level": level, "role": "mood", "weight": 1.0},
    ]


def submit(client, body, **extra):
    return client.post("/api/generations/", body, format="json", **extra)


def test_permitted_request_is_verified_logged_queued_then_generated_and_charged(
    studio, maker, django_capture_on_commit_callbacks
):
    client = client_for(maker)
    body = {"references": two_references(studio), "distribution": "commercial", "seconds": 2.0}
    with django_capture_on_commit_callbacks() as queued:
        response = submit(client, body)
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["status"] == "queued" and len(queued) == 1  # one task, after commit
    generation = GenerationRequest.objects.get(uid=data["id"])
    verification = AttributionRecord.objects.get(record_hash=data["verification_record_hash"])
    assert verification.payload["outcome"] == "permitted"
    assert [r["recording"] for r in verification.payload["references"]] == [
        ref["recording"] for ref in body["references"]
    ]
    assert all(r["consent_version_ids"] for r in verification.payload["references"])

    generation = generation_run(generation_id=generation.pk)
    assert generation.status == "succeeded", generation.failure_reason
    assert generation.progress_step == generation.progress_total > 0

    audio = wav_bytes(Path(generation.output.path))
    rate = sf.info(generation.output.path).samplerate
    assert abs(len(audio) / rate - 2.0) < 0.05 and float((audio**2).mean()) > 1e-6
    report = provenance.read_provenance(
        Path(generation.output.path), signing_credentials().trust_anchors_pem
    )
    assert report.trusted and report.intact
    titles = [r.title for r in studio["recordings"][4:6]]
    assert [i["title"] for i in report.manifest["ingredients"]] == titles
    # consent signals: each reference's CAWG entries (opted in to inference, not training)...
    for ingredient in report.manifest["ingredients"]:
        assert ingredient["relationship"] == "inputTo"
        entries = ingredient["metadata"]["cawg.training-mining"]["entries"]
        assert entries["cawg.ai_generative_training"] == {"use": "notAllowed"}
        assert entries["cawg.ai_inference"] == {"use": "allowed"}
    # ...and the output's own: no training on it, inference only on the platform's terms
    assertions = {a["label"]: a["data"] for a in report.manifest["assertions"]}
    own = assertions["cawg.training-mining"]["entries"]
    assert own["cawg.ai_training"] == {"use": "notAllowed"}
    assert own["cawg.ai_inference"]["use"] == "constrained"
    (created,) = assertions["c2pa.actions.v2"]["actions"]
    assert created["digitalSourceType"] == provenance.TRAINED_ALGORITHMIC_MEDIA
    anchor = AttributionRecord.objects.get(record_hash=report.embedded["attribution_record_hash"])
    assert anchor.generation_ref == generation.ref  # the verification the worker relied on
    assert anchor.payload["purpose"] == "worker_start"

    record = AttributionRecord.objects.get(record_hash=generation.generation_record_hash)
    assert (
        record.kind == "generation" and record.payload["output_sha256"] == generation.output_sha256
    )
    assert attribution_chain_verify().ok

    fee = LedgerTransaction.objects.get(key=f"generation:{generation.ref}:fee")
    entries = LedgerEntry.objects.filter(transaction=fee)
    assert sum(e.amount_minor for e in entries) == 0
    ita = {e.recording_id: -e.amount_minor for e in entries if e.component == "ita"}
    assert ita[studio["recordings"][4].pk] == 2 * ita[studio["recordings"][5].pk]  # weights 2:1

    detail = client.get(f"/api/generations/{generation.uid}/").json()
    assert detail["status"] == "succeeded" and detail["progress"]["fraction"] == 1.0
    download = client.get(f"/api/generations/{generation.uid}/audio/")
    assert download.status_code == 200 and download["Content-Type"] == "audio/wav"
    shown = client.get(f"/api/generations/{generation.uid}/provenance/").json()
    assert shown["c2pa"]["trusted"] and shown["embedded"]["generation_id"] == generation.ref


def test_refused_reference_gets_reasons_and_alternatives_and_nothing_is_queued(
    studio, maker, django_capture_on_commit_callbacks
):
    refused = studio["recordings"][5]
    consent_revoke(
        actor=studio["member"], holder=studio["holder"], recording=refused, uses=["song_inference"]
    )
    before = AttributionRecord.objects.count()
    body = {"references": two_references(studio), "distribution": "private", "seconds": 2.0}
    with django_capture_on_commit_callbacks() as queued:
        response = submit(client_for(maker), body)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "references_refused"
    verdict = error["details"]["references"]["1"]
    assert verdict["recording"] == refused.pk
    assert "song-level inference" in verdict["reasons"][0]
    alternatives = [a["recording"] for a in verdict["alternatives"]]
    assert alternatives and refused.pk not in alternatives
    assert "0" not in error["details"]["references"]  # the permitted one is not listed
    assert not queued and not GenerationRequest.objects.exists()
    assert not LedgerTransaction.objects.exists()
    logged = AttributionRecord.objects.order_by("sequence").last()
    assert AttributionRecord.objects.count() == before + 1
    assert logged.payload["outcome"] == "refused"


def test_revocation_between_submission_and_worker_start_fails_without_charge(studio, maker):
    response = submit(
        client_for(maker),
        {"references": two_references(studio), "distribution": "commercial", "seconds": 2.0},
    )
    generation = GenerationRequest.objects.get(uid=response.json()["id"])
    consent_revoke(
        actor=studio["member"],
        holder=studio["holder"],
        recording=studio["recordings"][4],
        distributions=["commercial"],
    )
    generation = generation_run(generation_id=generation.pk)
    assert generation.status == "failed"
    assert "commercial distribution" in generation.failure_reason
    assert not generation.output
    assert not LedgerTransaction.objects.exists()
    kinds = list(
        AttributionRecord.objects.filter(generation_ref=generation.ref)
        .order_by("sequence")
        .values_list("kind", "payload__outcome")
    )
    assert kinds == [
        ("verification", "permitted"),
        ("verification", "refused"),
        ("generation_failed", None),
    ]


def test_idempotency_by_key_and_a_second_run_changes_nothing(studio, maker):
    client = client_for(maker)
    body = {"references": two_references(studio), "distribution": "private", "seconds": 2.0}
    first = submit(client, body, HTTP_IDEMPOTENCY_KEY="order-17")
    again = submit(client, body, HTTP_IDEMPOTENCY_KEY="order-17")
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    changed = submit(client, {**body, "seconds": 1.5}, HTTP_IDEMPOTENCY_KEY="order-17")
    assert changed.status_code == 409
    assert GenerationRequest.objects.count() == 1

    generation = GenerationRequest.objects.get()
    generation_run(generation_id=generation.pk)
    done = generation_run(generation_id=generation.pk)  # a duplicate delivery
    assert done.status == "succeeded" and done.attempts == 1
    assert AttributionRecord.objects.filter(generation_ref=done.ref, kind="generation").count() == 1
    assert LedgerTransaction.objects.filter(generation_ref=done.ref).count() == 1


def test_parameter_audio_and_temporal_levels(studio, maker, tmp_path):
    client = client_for(maker)
    parameter = submit(
        client,
        {
            "references": two_references(studio, level="parameter", role="melody"),
            "distribution": "non_commercial",
            "seconds": 1.5,
            "prompt": "calm electronic",
        },
    )
    assert parameter.status_code == 201, parameter.json()

    track = user_track(tmp_path / "mine.wav", seconds=1.5)
    references = two_references(studio, level="audio")
    with track.open("rb") as handle:
        audio = client.post(
            "/api/generations/",
            {
                "references": json.dumps(references),
                "distribution": "private",
                "strength": 0.5,
                "upload": handle,
            },
            format="multipart",
        )
    assert audio.status_code == 201, audio.json()
    references[0]["level"] = "temporal"
    references[0]["segment_start"], references[0]["segment_end"] = 0.0, 4.0  # of the reference
    with track.open("rb") as handle:
        temporal = client.post(
            "/api/generations/",
            {
                "references": json.dumps(references),
                "distribution": "private",
                "segment_start": 0.5,
                "segment_end": 1.2,
                "upload": handle,
            },
            format="multipart",
        )
    assert temporal.status_code == 201, temporal.json()

    outputs = {}
    for response in (parameter, audio, temporal):
        generation = GenerationRequest.objects.get(uid=response.json()["id"])
        generation = generation_run(generation_id=generation.pk)
        assert generation.status == "succeeded", generation.failure_reason
        level = generation.references.first().level
        outputs[level] = wav_bytes(Path(generation.output.path))
        # the C2PA manifest, read back with c2pa-python: a transformed upload is the parent
        manifest = provenance.read_provenance(
            Path(generation.output.path), signing_credentials().trust_anchors_pem
        ).manifest
        relationships = [i["relationship"] for i in manifest["ingredients"]]
        actions = {a["label"]: a["data"] for a in manifest["assertions"]}["c2pa.actions.v2"]
        kinds = [(a["action"], a.get("digitalSourceType")) for a in actions["actions"]]
        if level == "parameter":
            assert relationships == ["inputTo", "inputTo"]
            assert kinds == [("c2pa.created", provenance.TRAINED_ALGORITHMIC_MEDIA)]
        else:
            assert relationships == ["parentOf", "inputTo", "inputTo"]
            assert kinds == [
                ("c2pa.opened", None),
                ("c2pa.edited", provenance.COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA),
            ]
            upload = manifest["ingredients"][0]["metadata"][provenance.UPLOAD_METADATA_KEY]
            assert upload["sha256"] == generation.upload_sha256
            assert upload["level"] == level
    rate = sf.info(generation.output.path).samplerate
    for level in ("audio", "temporal"):  # transformed tracks keep the upload's length
        assert abs(len(outputs[level]) / rate - 1.5) < 0.05
    fees = LedgerTransaction.objects.filter(kind="generation_fee")
    assert fees.count() == 3
    assert sorted(fees.values_list("entries__level", flat=True).distinct()) == [
        "audio",
        "parameter",
        "temporal",
    ]


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"weights": [-1.0, 1.0]}, 400, "negative"),
        ({"weights": [0.0, 0.0]}, 400, "all reference weights are zero"),
        ({"role": "kazoo"}, 400, "unknown role"),
        ({"seconds": 99.0}, 400, "seconds must be between"),
        ({"recording": 987654}, 404, "unknown recordings"),
        ({"distribution": "broadcast"}, 400, "invalid"),
        ({"segment": [5.0, 3.0]}, 400, "not a valid time range"),
        ({"segment": [0.0, 60.0]}, 400, "the recording is 12.000 s long"),
        ({"level": "audio"}, 400, "uploaded track"),
    ],
)
def test_bad_input_is_refused_with_nothing_queued(studio, maker, change, status, message):
    references = two_references(studio, level=change.get("level", "song"))
    if "weights" in change:
        for ref, weight in zip(references, change["weights"], strict=True):
            ref["weight"] = weight
    if "role" in change:
        references[0]["role"] = change["role"]
    if "recording" in change:
        references[0]["recording"] = change["recording"]
    if "segment" in change:
        references[0]["segment_start"], references[0]["segment_end"] = change["segment"]
    body = {
        "references": references,
        "distribution": change.get("distribution", "private"),
        "seconds": change.get("seconds", 2.0),
    }
    before = AttributionRecord.objects.count()
    response = submit(client_for(maker), body)
    assert response.status_code == status, response.json()
    assert message in json.dumps(response.json())
    assert not GenerationRequest.objects.exists()
    assert AttributionRecord.objects.count() == before


def test_a_reference_the_model_cannot_be_conditioned_on_is_refused_before_queueing(studio, maker):
    """A recording without the model encoder's vectors (a track vector for the whole recording,
    windows for a segment) is a 409 naming it; nothing is queued, logged or charged."""
    from catalog.models import RecordingEmbedding, RecordingWindowEmbedding

    encoder = studio["model_version"].encoder
    references = two_references(studio)
    whole, segmented = references[0]["recording"], references[1]["recording"]
    RecordingEmbedding.objects.filter(recording_id=whole, encoder=encoder).delete()
    RecordingWindowEmbedding.objects.filter(recording_id=segmented, encoder=encoder).delete()
    references[1]["segment_start"], references[1]["segment_end"] = 0.0, 2.0
    before = (AttributionRecord.objects.count(), LedgerTransaction.objects.count())
    response = submit(
        client_for(maker),
        {"references": references, "distribution": "private", "seconds": 2.0},
    )
    assert response.status_code == 409, response.json()
    error = response.json()["error"]
    assert "not been embedded" in error["message"]
    assert error["details"]["recordings"] == sorted([whole, segmented])
    assert not GenerationRequest.objects.exists()
    assert (AttributionRecord.objects.count(), LedgerTransaction.objects.count()) == before

    # the segmented reference still has its track vector: without the segment only the other
    # recording is missing
    references[1].pop("segment_start"), references[1].pop("segment_end")
    response = submit(
        client_for(maker),
        {"references": references, "distribution": "private", "seconds": 2.0},
    )
    assert response.status_code == 409
    assert response.json()["error"]["details"]["recordings"] == [whole]


def test_undecodable_upload_and_segment_outside_the_track(studio, maker, tmp_path):
    client = client_for(maker)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 20)
    references = json.dumps(two_references(studio, level="audio"))
    with junk.open("rb") as handle:
        response = client.post(
            "/api/generations/",
            {"references": references, "distribution": "private", "upload": handle},
            format="multipart",
        )
    assert response.status_code == 400 and "not decodable" in response.json()["error"]["message"]
    track = user_track(tmp_path / "mine.wav", seconds=1.5)
    temporal = two_references(studio, level="temporal")
    with track.open("rb") as handle:
        response = client.post(
            "/api/generations/",
            {
                "references": json.dumps(temporal),
                "distribution": "private",
                "segment_start": 1.0,
                "segment_end": 3.0,
                "upload": handle,
            },
            format="multipart",
        )
    assert response.status_code == 400 and "outside" in response.json()["error"]["message"]
    assert not GenerationRequest.objects.exists()


def test_another_users_generation_is_not_readable(studio, maker, make_user):
    response = submit(
        client_for(maker),
        {"references": two_references(studio), "distribution": "private", "seconds": 2.0},
    )
    uid = response.json()["id"]
    other = client_for(make_user("someone-else"))
    hidden = other.get(f"/api/generations/{uid}/")  # answered as an unknown id: 404
    unknown = other.get("/api/generations/00000000-0000-0000-0000-000000000000/")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"
    assert hidden.json()["error"]["message"] == f"generation {uid} does not exist"
    assert other.get("/api/generations/").json()["count"] == 0


def test_verify_endpoint_gives_per_reference_verdicts(studio, maker):
    consent_revoke(
        actor=studio["member"],
        holder=studio["holder"],
        recording=studio["recordings"][4],
        uses=["parameter_inference"],
    )
    response = client_for(maker).post(
        "/api/generations/verify/",
        {"references": two_references(studio, level="parameter", role="timbre"),
         "distribution": "private"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 200
    data = response.json()
    assert data["permitted"] is False
    assert [r["permitted"] for r in data["references"]] == [False, True]
    assert data["references"][0]["alternatives"]
