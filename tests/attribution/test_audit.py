"""The similarity audit in the product, on the tiny trained encoder and generator with real
recordings: clip embeddings in pgvector, calibration per encoder version, the audit of a
completed generation (a file that copies a catalogue recording is flagged, one that copies its
reference is not), the payout hold in the ledger, the API field, and the bad inputs."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from django.core.management import CommandError, call_command
from django.db.models import Sum
from rest_framework.test import APIClient

from attribution.audit import CalibrationConfig, ClipSpec, calibrate, split_clips
from attribution.checks import generations_hold_an_audit_clip
from attribution.models import ClipCalibration, ClipEmbedding, SimilarityAudit
from attribution.selectors import similarity_audit_for_generation
from attribution.services.audit import (
    audio_clip_vectors,
    catalogue_clips_embed,
    clip_calibrate,
    clips_search,
    similarity_audit_release,
    similarity_audit_run_here,
)
from catalog.audio.decoding import file_sha256, load_mono
from catalog.models import Artist, Recording
from catalog.retrieval.runtime import loaded_encoder
from catalog.services.encoders import encoder_register
from config.exceptions import Conflict
from generation.models import GenerationRequest
from generation.services.running import generation_run
from royalties.models import Account, LedgerEntry, LedgerTransaction
from royalties.services import tda_pool_settle, transaction_reverse
from tests.catalog.retrieval_fixtures import write_excerpt
from tests.conftest import require_real_audio

CLIP = ClipSpec(clip_seconds=3.0, hop_seconds=1.5)  # the product's defaults
# The committed demo encoder (trained by the project on the demo catalogue): the tiny test
# encoder's space is nearly collapsed (random clip pairs at 0.94), where no threshold means
# anything. The audit is configured to use it as a second, non-active encoder version.
DEMO_ENCODER = (
    Path(__file__).resolve().parents[2] / "catalog/encoders/pretrained/default-clap-demo.pt"
)
MUSIC = (
    Path("/usr/share/games/singularity/music"),
    Path("/usr/share/games/wesnoth/1.16/data/core/music"),
)


def more_catalogue(settings, count: int = 14) -> list[Recording]:
    """Real recordings in the catalogue without any consent (the audit searches them all):
    a calibration over six recordings would mean little."""
    paths = [p for folder in MUSIC for p in sorted(folder.glob("*.ogg"))]
    require_real_audio(*paths[:1])
    paths = [p for p in paths if sf.info(str(p)).duration > 40][::3][:count]
    artist = Artist.objects.get_or_create(name="Other Soundtracks")[0]
    recordings = []
    for path in paths:
        relative = f"recordings/test/other-{path.stem.replace(' ', '_')}.wav"
        excerpt = write_excerpt(
            path, Path(settings.MEDIA_ROOT) / relative, seconds=12.0, offset=20.0
        )
        recordings.append(
            Recording.objects.create(
                title=path.stem, artist=artist, duration_seconds=12.0, audio_file=relative,
                audio_format="wav", sample_rate=44100, channels=2,
                content_sha256=file_sha256(excerpt),
            )
        )  # fmt: skip
    return recordings


@pytest.fixture
def audit_settings(settings):
    settings.AUDIT_CLIP_SECONDS = CLIP.clip_seconds
    settings.AUDIT_CLIP_HOP_SECONDS = CLIP.hop_seconds
    settings.GENERATION_MIN_SECONDS = CLIP.clip_seconds
    settings.AUDIT_TOP_K = 5
    settings.AUDIT_FLAG_THRESHOLD = "mean+2sigma"
    settings.AUDIT_HOLD_PAYOUTS_ON_FLAG = True
    settings.AUDIT_EMBED_MISSING = True
    settings.AUDIT_ENCODER = ""
    settings.AUDIT_ON_GENERATION = False
    return settings


@pytest.fixture
def calibrated(studio, audit_settings):
    others = more_catalogue(audit_settings)
    version = encoder_register(name="default-clap", checkpoint_path=DEMO_ENCODER)
    assert not version.is_active
    audit_settings.AUDIT_ENCODER = str(version)
    counts = catalogue_clips_embed()
    assert counts["embedded"] == 6 + len(others) and counts["failed"] == 0
    calibration = clip_calibrate(config=CalibrationConfig(sample_clips=200))
    return {**studio, "calibration": calibration, "audit_encoder": version, "others": others}


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def generated(studio, maker, *, seconds: float = 3.0) -> GenerationRequest:
    """A generation referencing recordings 4 and 5 (the tiny model trained on 0-3)."""
    first, second = studio["recordings"][4], studio["recordings"][5]
    body = {
        "references": [
            {"recording": first.pk, "level": "song", "weight": 1.0},
            {"recording": second.pk, "level": "song", "role": "mood", "weight": 0.5},
        ],
        "distribution": "commercial",
        "seconds": seconds,
    }
    response = client_for(maker).post("/api/generations/", body, format="json")
    assert response.status_code == 201, response.json()
    generation = generation_run(
        generation_id=GenerationRequest.objects.get(uid=response.json()["id"]).pk
    )
    assert generation.status == "succeeded", generation.failure_reason
    return generation


def copy_into_output(generation, recording, *, offset: float, seconds: float = 6.0) -> None:
    """The generated file becomes a copy of `seconds` of a catalogue recording (as a model that
    memorised it would render); its stored hash follows, as if it had been generated so."""
    path = Path(generation.output.path)
    write_excerpt(Path(recording.audio_file.path), path, seconds=seconds, offset=offset)
    GenerationRequest.objects.filter(pk=generation.pk).update(output_sha256=file_sha256(path))


def holder_owed(generation_ref: str) -> int:
    total = LedgerEntry.objects.filter(
        generation_ref=generation_ref, account__kind=Account.Kind.HOLDER_PAYABLE
    ).aggregate(total=Sum("amount_minor"))["total"]
    return -(total or 0)


# -- clips and calibration -------------------------------------------------------------------------


def test_clips_are_encoder_embeddings_of_each_recording_and_embedding_is_idempotent(
    studio, audit_settings
):
    counts = catalogue_clips_embed()  # the active encoder (the tiny one)
    # 12-s recordings, 3-s clips every 1.5 s: 7 clips each
    assert counts == {"embedded": 6, "clips": 42, "failed": 0, "already": 0, "errors": {}}
    again = catalogue_clips_embed()
    assert again["embedded"] == 0 and again["already"] == 6
    assert ClipEmbedding.objects.count() == 42

    recording, encoder = studio["recordings"][2], loaded_encoder(studio["encoder"])
    audio = load_mono(Path(recording.audio_file.path), sample_rate=encoder.sample_rate)
    start, clip = split_clips(audio, encoder.sample_rate, CLIP)[5]
    stored = ClipEmbedding.objects.get(recording=recording, start_seconds=start)
    expected = encoder.embed_audio(clip[None, :])[0]
    assert stored.encoder_id == studio["encoder"].pk
    assert np.allclose(np.asarray(stored.embedding), expected, atol=2e-3)  # halfvec precision
    # the 10-s retrieval windows are untouched (retrieval never sees audit clips)
    from catalog.models import RecordingWindowEmbedding

    assert not RecordingWindowEmbedding.objects.exclude(window_seconds=10.0).exists()


def test_calibration_is_stored_per_encoder_version_from_the_stored_clips(calibrated):
    stored = calibrated["calibration"]
    rows = list(
        ClipEmbedding.objects.filter(encoder=calibrated["audit_encoder"]).values_list(
            "recording_id", "embedding"
        )
    )
    plain = calibrate(
        np.stack([np.asarray(v, dtype=np.float32) for _, v in rows]),
        np.array([r for r, _ in rows]),
        CalibrationConfig(sample_clips=200),
    )
    assert stored.encoder_id == calibrated["audit_encoder"].pk
    assert (stored.clip_seconds, stored.hop_seconds) == (3.0, 1.5)
    assert stored.clip_count == 7 * 20 and stored.recording_count == 20
    assert stored.mean == pytest.approx(plain.mean, abs=1e-6)
    assert stored.thresholds == pytest.approx(plain.thresholds, abs=1e-6)
    assert stored.config["raw_thresholds"]["mean+2sigma"] == pytest.approx(
        plain.mean + 2 * plain.std, abs=1e-6
    )
    t = stored.thresholds
    assert t["random"] < t["mean"] < t["mean+1sigma"] < t["mean+2sigma"] < 1.0


# -- the audit of a generation -----------------------------------------------------------------


def test_an_output_that_copies_a_catalogue_recording_is_flagged_and_its_payouts_held(
    calibrated, make_user
):
    maker = make_user("maker")
    generation = generated(calibrated, maker)
    copied = calibrated["recordings"][0]  # in the training set, not a reference
    copy_into_output(generation, copied, offset=3.0)  # 3 s into the recording
    owed_before = holder_owed(generation.ref)
    assert owed_before > 0

    audit = similarity_audit_run_here(generation_ref=generation.ref)

    assert audit.status == "done", audit.failure_reason
    assert audit.flagged and audit.payouts_held
    result = similarity_audit_for_generation(generation_ref=generation.ref)
    top = result.matches[0]
    assert top.recording_id == copied.pk and top.flagged
    assert not top.is_reference and top.in_training_set
    assert top.similarity > 0.99 and top.similarity >= result.threshold_value
    assert top.recording_start_seconds - top.output_start_seconds == pytest.approx(3.0)
    assert result.threshold_name == "mean+2sigma"
    assert result.threshold_value == pytest.approx(
        calibrated["calibration"].thresholds["mean+2sigma"]
    )
    assert set(result.reference_scores) == {str(r.pk) for r in calibrated["recordings"][4:]}

    # the hold: the holders' payouts of this generation moved to "held for review", balanced
    hold = LedgerTransaction.objects.get(generation_ref=generation.ref, kind="payout_hold")
    assert sum(hold.entries.values_list("amount_minor", flat=True)) == 0
    assert holder_owed(generation.ref) == 0
    held = hold.entries.filter(account__kind=Account.Kind.PAYOUTS_HELD)
    assert -sum(held.values_list("amount_minor", flat=True)) == owed_before

    # the API detail carries it
    detail = client_for(maker).get(f"/api/generations/{generation.ref}/").json()
    shown = detail["similarity_audit"]
    assert shown["flagged"] is True and shown["payouts_held"] is True
    assert shown["matches"][0]["recording"] == copied.pk
    assert shown["matches"][0]["title"] == copied.title
    assert shown["matches"][0]["is_reference"] is False


def test_an_output_that_copies_its_reference_is_not_flagged(calibrated, make_user):
    generation = generated(calibrated, make_user("maker"))
    reference = calibrated["recordings"][4]
    copy_into_output(generation, reference, offset=4.5)
    owed = holder_owed(generation.ref)

    audit = similarity_audit_run_here(generation_ref=generation.ref)

    assert audit.status == "done", audit.failure_reason
    result = similarity_audit_for_generation(generation_ref=generation.ref)
    top = result.matches[0]
    assert top.recording_id == reference.pk and top.is_reference and top.similarity > 0.99
    assert not top.flagged
    assert not result.flagged and not result.payouts_held
    assert result.reference_scores[str(reference.pk)]["similarity"] == pytest.approx(top.similarity)
    assert holder_owed(generation.ref) == owed  # nothing held
    assert not LedgerTransaction.objects.filter(kind="payout_hold").exists()


def test_with_the_hold_setting_off_a_flag_holds_nothing(calibrated, make_user, settings):
    settings.AUDIT_HOLD_PAYOUTS_ON_FLAG = False
    generation = generated(calibrated, make_user("maker"))
    copy_into_output(generation, calibrated["recordings"][1], offset=1.5)
    owed = holder_owed(generation.ref)
    audit = similarity_audit_run_here(generation_ref=generation.ref)
    assert audit.flagged and not audit.payouts_held
    assert holder_owed(generation.ref) == owed
    assert not LedgerTransaction.objects.filter(kind="payout_hold").exists()


def test_released_payouts_come_back_and_a_settlement_while_held_is_held_too(
    calibrated, make_user, staff
):
    generation = generated(calibrated, make_user("maker"))
    copy_into_output(generation, calibrated["recordings"][0], offset=6.0)
    owed = holder_owed(generation.ref)
    similarity_audit_run_here(generation_ref=generation.ref)
    assert holder_owed(generation.ref) == 0

    training = calibrated["model_version"].training_recording_ids
    settlement = tda_pool_settle(generation_ref=generation.ref, shares={training[0]: 1.0})
    pool = -settlement.entries.filter(account__kind="holder_payable").aggregate(
        t=Sum("amount_minor")
    )["t"]
    assert pool > 0
    assert holder_owed(generation.ref) == 0  # the settlement's payouts are held as well
    assert LedgerTransaction.objects.filter(kind="payout_hold").count() == 2

    fee = LedgerTransaction.objects.get(key=f"generation:{generation.ref}:fee")
    with pytest.raises(Conflict, match="release the hold first"):
        transaction_reverse(actor=staff, ledger_transaction=fee, reason="refund")

    audit = similarity_audit_release(actor=staff, generation_ref=generation.ref, reason="cover")
    assert not audit.payouts_held
    assert holder_owed(generation.ref) == owed + pool
    reversals = LedgerTransaction.objects.filter(kind="reversal", generation_ref=generation.ref)
    assert reversals.count() == 2  # corrections are reversals; nothing was updated


def test_no_generation_is_shorter_than_one_audit_clip(calibrated, make_user):
    """The near-copy check and its payout hold apply to every output: a request shorter than
    one 3-s clip is refused before anything is queued, and the shortest one is audited."""
    maker = make_user("maker")
    body = {
        "references": [{"recording": calibrated["recordings"][4].pk, "level": "song"}],
        "distribution": "commercial",
        "seconds": 2.999,
    }
    refused = client_for(maker).post("/api/generations/", body, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == (
        "seconds must be between 3 and 6 (the shortest output is one similarity-audit clip)"
    )
    assert not GenerationRequest.objects.exists()

    generation = generated(calibrated, maker, seconds=3.0)
    audit = similarity_audit_run_here(generation_ref=generation.ref)
    assert audit.status == "done", audit.failure_reason
    assert audit.output_clip_count == 1 and audit.matches.exists()


def test_the_settings_may_not_let_outputs_escape_the_audit(settings):
    settings.AUDIT_CLIP_SECONDS = 3.0
    settings.GENERATION_MIN_SECONDS = 2.0
    errors = generations_hold_an_audit_clip(None)
    assert [e.id for e in errors] == ["attribution.E001"]
    assert "short outputs would escape the similarity audit" in errors[0].msg
    settings.GENERATION_MIN_SECONDS = 3.0
    assert generations_hold_an_audit_clip(None) == []


def test_an_encoder_version_without_calibration_fails_with_a_reason(
    studio, audit_settings, make_user
):
    generation = generated(studio, make_user("maker"))
    audit = similarity_audit_run_here(generation_ref=generation.ref)
    assert audit.status == "failed"
    assert "has no calibration" in audit.failure_reason
    assert "calibrate_audit" in audit.failure_reason
    assert not ClipCalibration.objects.exists() and not audit.matches.exists()


def test_missing_clips_are_computed_on_demand_or_refused(calibrated, make_user, settings):
    generation = generated(calibrated, make_user("maker"))
    copy_into_output(generation, calibrated["recordings"][4], offset=0.0)  # long enough
    reference = calibrated["recordings"][5]
    ClipEmbedding.objects.filter(recording=reference).delete()

    settings.AUDIT_EMBED_MISSING = False
    audit = similarity_audit_run_here(generation_ref=generation.ref)
    assert audit.status == "failed"
    assert f"recordings [{reference.pk}]" in audit.failure_reason
    assert "embed_clips" in audit.failure_reason
    assert not ClipEmbedding.objects.filter(recording=reference).exists()

    settings.AUDIT_EMBED_MISSING = True
    audit = similarity_audit_run_here(generation_ref=generation.ref, again=True)
    assert audit.status == "done", audit.failure_reason
    assert ClipEmbedding.objects.filter(recording=reference).count() == 7
    assert audit.coverage["searched_recordings"] == 20
    assert str(reference.pk) in audit.reference_scores


def test_completion_requests_an_audit_queued_on_commit(
    calibrated, make_user, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from attribution import tasks

    queued = []
    monkeypatch.setattr(tasks.similarity_audit_run, "delay", lambda pk: queued.append(pk))
    settings.AUDIT_ON_GENERATION = True
    with django_capture_on_commit_callbacks(execute=True):
        generation = generated(calibrated, make_user("maker"))
    audit = SimilarityAudit.objects.get(generation_ref=generation.ref)
    assert audit.status == "queued" and queued == [audit.pk]
    copy_into_output(generation, calibrated["recordings"][5], offset=0.0)
    result = tasks.similarity_audit_run(audit.pk)  # what the `audit` worker runs
    assert result["status"] == "done"
    from django.conf import settings as live

    assert live.CELERY_TASK_ROUTES["attribution.tasks.similarity_audit_run"] == {"queue": "audit"}


# -- commands and the staff page -----------------------------------------------------------------


def test_the_commands_run_on_tiny_data_and_save_their_reports(
    calibrated, make_user, settings, tmp_path, client, staff
):
    settings.TDA_STATE_DIR = tmp_path / "tda"
    out = StringIO()
    call_command("embed_clips", "--calibrate", stdout=out)
    text = out.getvalue()
    assert "0 recordings embedded" in text and "20 already" in text  # idempotent
    assert ClipCalibration.objects.count() == 1  # nothing new: no new calibration
    out = StringIO()
    call_command("calibrate_audit", "--sample-clips", "100", stdout=out)
    text = out.getvalue()
    assert "mean+2sigma" in text and "raw fit" in text and ClipCalibration.objects.count() == 2

    generation = generated(calibrated, make_user("maker"))
    copy_into_output(generation, calibrated["recordings"][0], offset=3.0)
    out = StringIO()
    call_command("audit_generation", generation.ref, stdout=out)
    assert "FLAGGED (payouts held for review)" in out.getvalue()
    assert f"{calibrated['recordings'][0].pk}: Electro" in out.getvalue()

    out = StringIO()
    call_command(
        "audit_robustness", "--quick", "--recordings", "4", "--held-out", "2",
        "--generations", "1", stdout=out,
    )  # fmt: skip
    lines = out.getvalue().splitlines()
    unperturbed = next(line for line in lines if line.startswith("none "))
    assert unperturbed.split()[-3:] == ["1.00", "1.00", "1.00"]  # the clip itself is indexed
    for kind in ("pitch", "stretch", "noise", "mashup_catalogue", "mashup_outside"):
        assert any(line.startswith(kind) for line in lines), kind
    assert any(line.startswith("mashup_generated") for line in lines)
    (report,) = (tmp_path / "tda" / "reports").glob("audit_robustness-*")
    assert {"robustness.csv", "robustness.png", "summary.json"} <= {
        p.name for p in report.iterdir()
    }

    out = StringIO()
    call_command("audit_model", "--generations", "5", stdout=out)
    text = out.getvalue()
    assert "Table 2 (1 outputs" in text and "Table 3" in text
    assert "skipped" not in text or "shorter" not in text
    (model_report,) = (tmp_path / "tda" / "reports").glob("audit_model-*")
    assert (model_report / "model.png").stat().st_size > 1000

    with pytest.raises(CommandError, match="give a generation id"):
        call_command("audit_generation")

    client.force_login(staff)
    page = client.get("/attribution/audits/?flagged=1").content.decode()
    assert generation.ref in page and "payouts held for review" in page
    assert "audit_robustness-" in client.get("/attribution/reports/").content.decode()


@pytest.mark.filterwarnings("ignore:torch.meshgrid:UserWarning")
def test_the_laion_clap_adapter_embeds_and_finds_clips(studio, audit_settings, tmp_path):
    """The LAION-CLAP adapter as the audit's encoder (a small checkpoint in the real file's
    format; HTSAT-tiny): clips are embedded with it and a clip is found in its recording."""
    from tests.catalog.test_laion_clap_adapter import (
        build_reference_module,
        write_test_checkpoint,
        write_text_model_dir,
    )

    text_dir = write_text_model_dir(tmp_path / "text")
    checkpoint = write_test_checkpoint(tmp_path, build_reference_module(text_dir).model)
    version = encoder_register(name="laion-clap", checkpoint_path=checkpoint)
    audit_settings.AUDIT_ENCODER = f"laion-clap@{version.version}"
    recordings = studio["recordings"][:3]
    counts = catalogue_clips_embed(recording_ids=[r.pk for r in recordings])
    assert counts["embedded"] == 3 and counts["clips"] == 21
    assert ClipEmbedding.objects.filter(encoder=version).count() == 21
    encoder = loaded_encoder(version)
    assert encoder.sample_rate == 48_000
    target = recordings[1]
    audio = load_mono(Path(target.audio_file.path), sample_rate=encoder.sample_rate)
    starts, vectors = audio_clip_vectors(audio=audio[: 6 * 48_000], encoder=encoder, spec=CLIP)
    found = clips_search(
        starts=starts, vectors=vectors, encoder_version=version, spec=CLIP, k=3,
        recording_ids=[r.pk for r in recordings],
    )  # fmt: skip
    assert found.matches[0].recording_id == target.pk
    assert found.matches[0].similarity > 0.99


def test_a_clip_embeds_the_same_whatever_it_is_embedded_with(studio, audit_settings):
    """A quiet passage next to a loud one: a clip's vector is its own audio's, embedded alone
    or in a batch (the default encoder floors each item's log-mel on its own; the audit also
    embeds clip by clip, for encoders whose front end floors per batch)."""
    encoder = loaded_encoder(studio["encoder"])
    loud = load_mono(Path(studio["recordings"][0].audio_file.path), sample_rate=16_000)[
        : 6 * 16_000
    ]
    audio = np.concatenate([loud[: 3 * 16_000] * 1e-4, loud[3 * 16_000 :]])
    starts, vectors = audio_clip_vectors(audio=audio, encoder=encoder, spec=ClipSpec(3.0, 3.0))
    alone = encoder.embed_audio(audio[None, : 3 * 16_000])[0]
    together = encoder.embed_audio(np.stack([audio[: 3 * 16_000], audio[3 * 16_000 :]]))[0]
    assert starts == [0.0, 3.0]
    assert float(vectors[0] @ alone) > 0.9999
    assert float(together @ alone) > 0.9999
