"""The audit's second score (issue 18, part 2): a key-invariant melody signal with its own clips
and calibration, searched beside the main encoder's; a melody copied in another key flags the
output, each reference gets a melody score with its roles, and a melody signal that cannot run
leaves the main audit standing."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import librosa
import pytest
import soundfile as sf
from django.core.management import call_command
from django.test import Client

from attribution.audit import CalibrationConfig
from attribution.selectors import similarity_audit_for_generation
from attribution.services.audit import (
    catalogue_clips_embed,
    clip_calibrate,
    similarity_audit_run_here,
)
from catalog.audio.decoding import file_sha256, load_mono
from catalog.encoders import MELODY_CARD
from catalog.services.encoders import encoder_register
from generation.models import GenerationRequest
from royalties.models import LedgerTransaction
from tests.attribution.test_audit import (  # noqa: F401
    audit_settings,
    calibrated,
    client_for,
    generated,
    holder_owed,
)
from tests.generation.conftest import embedded_catalogue, pricing, studio, tiny_checkpoint  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture
def with_melody(calibrated):  # noqa: F811
    version = encoder_register(name="melody", checkpoint_path=MELODY_CARD)
    counts = catalogue_clips_embed(encoder_version=version)
    assert counts["failed"] == 0 and counts["embedded"] == 6 + len(calibrated["others"])
    config = CalibrationConfig(sample_clips=200)
    calibration = clip_calibrate(encoder_version=version, config=config)
    return {**calibrated, "melody": version, "melody_calibration": calibration}


def transposed_copy_into_output(generation, recording, *, offset: float, semitones: int) -> None:
    """The output becomes 6 s of a catalogue recording moved to another key (a melody lifted
    from it); its stored hash follows, as if it had been generated so."""
    path = Path(generation.output.path)
    audio = load_mono(Path(recording.audio_file.path), sample_rate=22_050)
    excerpt = audio[int(offset * 22_050) : int((offset + 6.0) * 22_050)]
    shifted = librosa.effects.pitch_shift(excerpt, sr=22_050, n_steps=semitones)
    sf.write(str(path), shifted, 22_050)
    GenerationRequest.objects.filter(pk=generation.pk).update(output_sha256=file_sha256(path))


def test_a_melody_lifted_in_another_key_is_flagged_by_the_melody_signal(
    with_melody,
    audit_settings,  # noqa: F811
    make_user,
):
    audit_settings.AUDIT_MELODY_ENCODER = str(with_melody["melody"])
    maker = make_user("maker")
    copied = with_melody["recordings"][0]  # in the training set, not a reference

    # by default a melody flag is shown for review and holds nothing by itself
    audit_settings.AUDIT_MELODY_HOLDS = False
    shown_only = generated(with_melody, maker)
    transposed_copy_into_output(shown_only, copied, offset=3.0, semitones=3)
    audit = similarity_audit_run_here(generation_ref=shown_only.ref)
    assert audit.melody["flagged"] and audit.melody["matches"][0]["recording_id"] == copied.pk
    main_flagged = audit.matches.filter(flagged=True).exists()
    assert audit.flagged == main_flagged and audit.payouts_held == main_flagged

    audit_settings.AUDIT_MELODY_HOLDS = True
    generation = generated(with_melody, maker)
    transposed_copy_into_output(generation, copied, offset=3.0, semitones=3)
    owed = holder_owed(generation.ref)

    audit = similarity_audit_run_here(generation_ref=generation.ref)

    assert audit.status == "done", audit.failure_reason
    result = similarity_audit_for_generation(generation_ref=generation.ref)
    melody = result.melody
    assert melody["encoder"] == str(with_melody["melody"])
    assert melody["threshold_value"] == pytest.approx(
        with_melody["melody_calibration"].thresholds["mean+2sigma"]
    )
    top = melody["matches"][0]
    assert top["recording_id"] == copied.pk and top["flagged"] and not top["is_reference"]
    assert top["similarity"] >= melody["threshold_value"]
    assert melody["flagged"] and result.flagged and audit.payouts_held and owed > 0
    hold = LedgerTransaction.objects.get(generation_ref=generation.ref, kind="payout_hold")
    if not any(m.flagged for m in result.matches):  # the timbre signal missed it: say which did
        assert "melody signal" in hold.memo
    # every reference has a melody score, with the role it was given
    references = with_melody["recordings"][4:6]
    assert set(melody["reference_scores"]) == {str(r.pk) for r in references}
    assert melody["reference_scores"][str(references[1].pk)]["roles"] == ["mood"]
    shown = client_for(maker).get(f"/api/generations/{generation.ref}/").json()
    assert shown["similarity_audit"]["melody"]["matches"][0]["recording_id"] == copied.pk
    # staff see it on the audits page, and the command prints it
    client = Client()
    client.force_login(make_user("staff", staff=True))
    page = client.get("/attribution/audits/?flagged=1").content.decode()
    assert "Melody signal (key-invariant" in page and f"recording {references[1].pk} (mood)" in page
    out = StringIO()
    call_command("audit_generation", generation.ref, stdout=out)
    assert f"reference {references[1].pk} (mood): melody" in out.getvalue()


def test_an_uncalibrated_melody_signal_is_reported_and_the_main_audit_stands(
    calibrated,  # noqa: F811
    audit_settings,  # noqa: F811
    make_user,
):
    version = encoder_register(name="melody", checkpoint_path=MELODY_CARD)
    audit_settings.AUDIT_MELODY_ENCODER = str(version)
    generation = generated(calibrated, make_user("maker"))

    audit = similarity_audit_run_here(generation_ref=generation.ref)

    assert audit.status == "done", audit.failure_reason
    assert "no calibration" in audit.melody["error"] and not audit.flagged
    assert audit.matches.exists()  # the main encoder's search was stored
