"""evaluate_generator end to end on a tiny model: the report is stored with the model version,
it tells real audio from a barely trained model, and staff (only) can read and hear it."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from catalog.services.consent import consent_grant
from generation.model import GeneratorConfig, TrainConfig
from generation.services.models import generator_train

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(
        importlib.util.find_spec("musicnn") is None, reason="musicnn is installed by make install"
    ),
]


@pytest.fixture
def evaluated(settings, tmp_path, embedded_catalogue):
    """Two of six recordings trained on (four held out), a tiny model, one evaluation."""
    settings.GENERATOR_CHECKPOINT_DIR = tmp_path / "generators"
    for recording in embedded_catalogue["recordings"][:2]:
        consent_grant(
            actor=embedded_catalogue["member"],
            holder=embedded_catalogue["holder"],
            recording=recording,
            uses=["training"],
        )
    version = generator_train(
        config=GeneratorConfig.tiny(), train=TrainConfig.tiny(steps=20)
    ).model_version
    out = io.StringIO()
    call_command(
        "evaluate_generator", generations=3, seconds=3.0, others=3, stdout=out,
        stderr=io.StringIO(),
    )  # fmt: skip
    version.refresh_from_db()
    return {**embedded_catalogue, "model_version": version, "table": out.getvalue()}


def test_the_report_is_stored_separates_real_audio_from_the_model_and_refuses_bad_settings(
    evaluated, settings
):
    report = evaluated["model_version"].quality["evaluation"]
    names = [row["name"] for row in report["rows"]]
    assert names[0] == "real held-out audio" and names[1].startswith("ceiling")
    real, ceiling, model = report["rows"]
    trained = {r.pk for r in evaluated["recordings"][:2]}
    held_out = set(report["held_out"]["reference"]) | set(report["held_out"]["comparison"])
    assert held_out and not held_out & trained  # never measured against its own training audio
    for space in ("musicnn", "clap"):
        assert model["frechet"][space]["distance"] > real["frechet"][space]["distance"]
    assert model["conditioning"]["generations"] == 3
    # measured as served: each output the best of the configured number of draws
    assert report["settings"]["candidates"] == settings.GENERATION_CANDIDATES == 3
    # and the conditioning again in musicnn's space, which the choice never sees
    by_musicnn = model["conditioning_musicnn"]
    assert by_musicnn["generations"] == 3 and len(by_musicnn["gaps"]) == 3
    assert by_musicnn["gap"] == pytest.approx(
        by_musicnn["mean_similarity_to_references"]
        - by_musicnn["mean_similarity_to_random_others"],
        abs=1e-3,
    )
    assert "wins m" in evaluated["table"]
    assert model["memorisation"]["rate"] is None  # no audit clips here: said, not guessed
    assert (
        "calibrat" in model["memorisation"]["problem"]
        or "clips" in (model["memorisation"]["problem"])
    )
    assert model["real_time_factor"] > 0
    assert "ceiling" in evaluated["table"] and "FD musicnn" in evaluated["table"]
    folder = Path(settings.MEDIA_ROOT) / "quality" / str(evaluated["model_version"].pk)
    first = report["samples"][0]
    assert (folder / first["output"]).is_file() and (folder / first["spectrograms"]).is_file()
    assert len(first["references"]) == 2

    # bad settings are refused before anything runs, and the stored report stays as it is
    before = dict(evaluated["model_version"].quality)
    with pytest.raises(CommandError, match="at least 2"):
        call_command("evaluate_generator", generations=1)
    with pytest.raises(CommandError, match="between 3 and 60"):
        call_command("evaluate_generator", seconds=1.0)
    with pytest.raises(CommandError, match="--candidates must be between 1 and 8"):
        call_command("evaluate_generator", candidates=0)
    with pytest.raises(CommandError, match="no model version"):
        call_command("evaluate_generator", model_version=987654)
    with pytest.raises(CommandError, match="12 are needed"):
        call_command("evaluate_generator", others=10)  # six recordings in this catalogue
    evaluated["model_version"].refresh_from_db()
    assert evaluated["model_version"].quality == before

    # a sweep (--no-store, other seeds) prints its table and leaves the stored report's
    # listening samples as they are
    sheet = folder / first["spectrograms"]
    kept = sheet.read_bytes()
    out = io.StringIO()
    call_command(
        "evaluate_generator", generations=3, seconds=3.0, others=3, seed=5, no_store=True,
        stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    assert "FD∞ musicnn" in out.getvalue() and "ceiling" in out.getvalue()
    assert sheet.read_bytes() == kept
    evaluated["model_version"].refresh_from_db()
    assert evaluated["model_version"].quality == before


def test_staff_see_the_table_and_samples_and_nobody_else(evaluated, staff, make_user):
    version = evaluated["model_version"]
    sample = version.quality["evaluation"]["samples"][0]
    client = Client()
    client.force_login(staff)
    html = client.get("/studio/quality/").content.decode()
    assert f"Model version {version.pk}" in html and "ceiling" in html
    assert f"/studio/quality/{version.pk}/{sample['spectrograms']}" in html
    image = client.get(f"/studio/quality/{version.pk}/{sample['spectrograms']}")
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    audio = client.get(f"/studio/quality/{version.pk}/{sample['output']}")
    assert audio.status_code == 200 and audio["Content-Type"] == "audio/wav"
    assert client.get(f"/studio/quality/{version.pk}/..%2Fsecret.wav").status_code == 404
    assert client.get(f"/studio/quality/{version.pk}/missing.png").status_code == 404
    maker = Client()
    maker.force_login(make_user("maker"))
    assert maker.get("/studio/quality/").status_code == 302  # to the admin sign-in
    assert maker.get(f"/studio/quality/{version.pk}/{sample['output']}").status_code == 302


def test_the_quick_clap_frechet_puts_noise_far_from_held_out_audio_and_music_near(
    settings, tmp_path, embedded_catalogue
):
    """The unlearning job's quality check: real excerpts of two recordings read close to two
    other recordings' audio, white noise of the same length does not."""
    import numpy as np

    from generation.services.quality import _excerpts, outputs_clap_frechet

    settings.GENERATOR_CHECKPOINT_DIR = tmp_path / "generators"
    recordings = embedded_catalogue["recordings"]
    for recording in recordings[:2]:
        consent_grant(actor=embedded_catalogue["member"], holder=embedded_catalogue["holder"],
                      recording=recording, uses=["training"])  # fmt: skip
    version = generator_train(
        config=GeneratorConfig.tiny(), train=TrainConfig.tiny(steps=5)
    ).model_version
    rate = 16_000
    music = [c.audio for c in _excerpts([r.pk for r in recordings[2:4]], 3, 4.0, rate)]
    noise = [np.random.default_rng(n).normal(0, 0.1, 4 * rate).astype(np.float32)
             for n in range(len(music))]  # fmt: skip
    result = outputs_clap_frechet(
        model_version=version, outputs={"music": music, "noise": noise}, sample_rate=rate,
        heldout_ids=[r.pk for r in recordings[4:]],
    )  # fmt: skip
    assert result["music"]["vectors"] == result["noise"]["vectors"] >= 3 * len(music)
    gap = result["noise"]["fd"] - result["music"]["fd"]
    assert gap > 2 * max(result["noise"]["se"], result["music"]["se"]), result
