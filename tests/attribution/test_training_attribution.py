"""Training-time attribution in the product: a completed generation gets a TDA job whose scores
cover the model version's whole training manifest, are readable through the API, and settle
the fee's TDA pool; sharded (Celery chord) and unsharded scoring give identical scores; bad
states fail the job with a reason and store no scores."""

from __future__ import annotations

import json
import time
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from attribution.models import TrainingAttribution
from attribution.services.training import (
    tda_config,
    training_attribution_request,
    training_attribution_retry,
    training_attribution_run_here,
)
from attribution.tda import AttributionRun
from attribution.tda.platform_model import PlatformTarget, platform_manifest
from generation.models import GenerationRequest
from generation.services.attribution_inputs import (
    generated_sample,
    model_version_generator,
    model_version_training_items,
)
from generation.services.running import generation_run
from royalties.models import LedgerEntry, LedgerTransaction
from tests.attribution.conftest import emptied_log_after  # noqa: F401
from tests.generation.conftest import (
    TRAINED,
    generation_and_attribution_worker,  # noqa: F401
)

# 1 item per batch so that the 4 training items make 4 chunks (tiny model: fast)
TINY_TDA = {"method": "exact", "loss_mask": True, "learning_rate": 1e-7, "items_per_batch": 1,
            "loss_timesteps": 8, "unlearn_timesteps": 8, "fisher_timesteps": 4,
            "loss_draw_banks": 2, "regime_probe_items": 3}  # fmt: skip
FIRST_ORDER_TDA = TINY_TDA | {
    "method": "first_order", "loss_timesteps": 2, "loss_draw_banks": 4, "query_groups": 4,
    "projection": "countsketch", "projection_dim": 16384,
}  # fmt: skip


@pytest.fixture
def tda_settings(settings, tmp_path):
    settings.TDA_STATE_DIR = tmp_path / "tda"
    settings.TDA_CONFIG = TINY_TDA
    settings.TDA_CHUNK_ITEMS = 1
    settings.TDA_PAYOUT_SHARES = "topk"
    settings.TDA_PAYOUT_TOP_K = 2
    settings.TDA_PAYOUT_MIN_Z = 0.0  # the tiny model's scores are noisy; the rule is tested below
    settings.TDA_COVERAGE = "whole"
    settings.TDA_PAYOUT_AGGREGATE = "max"  # the tiny model's window means are all negative
    return settings


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def references(studio) -> list[dict]:
    first, second = studio["recordings"][4], studio["recordings"][5]
    return [
        {"recording": first.pk, "level": "song", "weight": 1.0},
        {"recording": second.pk, "level": "song", "role": "mood", "weight": 0.5},
    ]


def generated(studio, maker, seed: int | None = None) -> GenerationRequest:
    body = {"references": references(studio), "distribution": "commercial", "seconds": 1.5}
    if seed is not None:  # else the platform draws one: the sample differs per run
        body["seed"] = seed
    response = client_for(maker).post("/api/generations/", body, format="json")
    assert response.status_code == 201, response.json()
    generation = generation_run(
        generation_id=GenerationRequest.objects.get(uid=response.json()["id"]).pk
    )
    assert generation.status == "succeeded", generation.failure_reason
    return generation


def unsharded_scores(generation: GenerationRequest, directory: Path) -> dict[int, float]:
    """The same query scored in one pass by the plain TDA module, in a fresh directory: the
    mean over each recording's windows."""
    model_version_id = generation.model_version_id
    generator = model_version_generator(model_version_id=model_version_id)
    target = PlatformTarget(generator.config)
    sample = generated_sample(generation_ref=generation.ref)
    run = AttributionRun(
        directory,
        target=target,
        model=generator.model,
        manifest=platform_manifest(
            model_version_training_items(model_version_id=model_version_id), generator.config
        ),
        query=target.query_example(sample.logmel, target.spec_conditioning(sample.spec)),
        config=tda_config(),
        model_version=generation.model_version.checkpoint_sha256,
        query_key=generation.ref,
    )
    recordings = run.run().recordings()
    return {int(i): float(s) for i, s in zip(recordings.ids, recordings.mean, strict=True)}


@pytest.mark.django_db
def test_generation_is_attributed_over_its_whole_manifest_and_settles_the_pool(
    studio, make_user, tda_settings, tmp_path
):
    maker = make_user("maker")
    generation = generated(studio, maker)
    job = TrainingAttribution.objects.get(generation_ref=generation.ref)
    assert job.status == "queued" and job.scores is None
    # the sampled log-mel is stored with its hash and named in the generation record
    assert generation.sample_sha256 and Path(generation.sample.path).is_file()

    job = training_attribution_run_here(job_id=job.pk)
    assert job.status == "done", job.failure_reason
    training = studio["model_version"].training_recording_ids
    assert len(training) == TRAINED and sorted(map(int, job.scores)) == sorted(training)
    # whole recordings: every window of every training recording was scored
    windows = job.evidence["windows"]
    assert sorted(map(int, windows)) == sorted(training) and min(windows.values()) >= 2
    assert job.progress_done == job.progress_total == sum(windows.values())
    assert job.chunks_total == sum(windows.values())  # 1 window per chunk in this test
    assert all(np.isfinite(v) for v in job.scores.values())
    assert len(set(job.scores.values())) == TRAINED  # real, distinct scores
    errors = job.evidence["standard_errors"]
    assert all(np.isfinite(e) and e > 0 for e in errors.values())
    assert job.evidence["regime"]["own_loss_rise"] > 0  # unlearning raised the query's loss
    assert len(job.evidence["regime"]["probe"]) == 3
    assert job.scores == job.evidence["max"]  # the aggregate this test pays by
    for kind in ("softmax", "topk"):
        assert sum(job.shares[kind].values()) == pytest.approx(1.0)
    top2 = sorted(job.scores, key=lambda r: -job.scores[r])[:2]
    positive_top2 = {r for r in top2 if job.scores[r] > 0}  # min_z 0: positive scores clear
    assert positive_top2 and set(job.shares["payout"]) == positive_top2
    assert {r for r, s in job.shares["topk"].items() if s > 0} == positive_top2

    # identical to an unsharded run of the same query by the plain module
    whole = unsharded_scores(generation, tmp_path / "whole")
    assert whole == {int(r): s for r, s in job.evidence["mean"].items()}

    # the fee's pending TDA pool went to the holders of the top-2 training recordings
    settlement = LedgerTransaction.objects.get(key=job.settlement_ref)
    entries = LedgerEntry.objects.filter(transaction=settlement)
    assert sum(e.amount_minor for e in entries) == 0
    paid = {e.recording_id for e in entries if e.component == "tda" and e.amount_minor < 0}
    assert paid == {int(r) for r in positive_top2}
    fee = LedgerTransaction.objects.get(key=f"generation:{generation.ref}:fee")
    pool = -sum(e.amount_minor for e in fee.entries.filter(component="tda_pool"))
    assert pool > 0 and -sum(e.amount_minor for e in entries if e.component == "tda") == pool

    # running again changes nothing (idempotent per generation)
    again = training_attribution_run_here(job_id=job.pk)
    assert again.scores == job.scores and again.settlement_ref == job.settlement_ref
    assert LedgerTransaction.objects.filter(kind="tda_settlement").count() == 1

    detail = client_for(maker).get(f"/api/generations/{generation.ref}/").json()
    assert detail["training_attribution_url"].endswith(
        f"/api/attribution/training/{generation.ref}/"
    )
    shown = client_for(maker).get(detail["training_attribution_url"]).json()
    assert shown["status"] == "done" and shown["payout_share_kind"] == "topk"
    scores = [c["score"] for c in shown["contributors"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == TRAINED
    titles = {r.pk: r.title for r in studio["recordings"]}
    assert all(c["title"] == titles[c["recording"]] for c in shown["contributors"])
    other = client_for(make_user("someone-else"))
    assert other.get(f"/api/attribution/training/{generation.ref}/").status_code == 404

    printed = StringIO()
    call_command("attribute_generation", generation.ref, stdout=printed)
    text = printed.getvalue()
    assert "regime: own-loss rise" in text and "SE" in text and job.settlement_ref in text


@pytest.mark.django_db
def test_a_changed_sample_fails_the_job_with_a_reason_and_no_scores(
    studio, make_user, tda_settings
):
    generation = generated(studio, make_user("maker"))
    job = TrainingAttribution.objects.get(generation_ref=generation.ref)
    sample = Path(generation.sample.path)
    np.save(sample, np.zeros((80, 10), dtype=np.float32))  # tampered on disk
    job = training_attribution_run_here(job_id=job.pk)
    assert job.status == "failed" and "changed" in job.failure_reason
    assert job.scores is None and job.shares is None and not job.settlement_ref
    assert not LedgerTransaction.objects.filter(kind="tda_settlement").exists()

    with pytest.raises(Exception, match="only a failed job"):
        training_attribution_retry(job=TrainingAttribution.objects.create(
            generation_ref="00000000-0000-0000-0000-000000000000", generation_requested_by=1,
            model_version_id=1, model_checkpoint_sha256="0" * 64, config={},
        ))  # fmt: skip


@pytest.mark.django_db
def test_a_bad_tda_setting_fails_the_job_not_the_generation(studio, make_user, tda_settings):
    tda_settings.TDA_CONFIG = {"learning_rate": -1.0}
    generation = generated(studio, make_user("maker"))
    job = TrainingAttribution.objects.get(generation_ref=generation.ref)
    assert job.status == "failed" and "learning_rate" in job.failure_reason
    job = training_attribution_request(
        generation_ref=generation.ref,
        requested_by_id=generation.requested_by_id,
        model_version_id=generation.model_version_id,
        model_checkpoint_sha256=generation.model_version.checkpoint_sha256,
    )
    assert job.status == "failed"  # idempotent: the same job


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_worker_scores_chunks_as_a_chord_with_progress(
    studio,
    make_user,
    tda_settings,
    generation_and_attribution_worker,  # noqa: F811
    emptied_log_after,  # noqa: F811
    tmp_path,
):
    tda_settings.TDA_ON_GENERATION = True
    maker = make_user("maker")
    client = client_for(maker)
    body = {"references": references(studio), "distribution": "commercial", "seconds": 1.5}
    response = client.post("/api/generations/", body, format="json")
    assert response.status_code == 201, response.json()
    ref = response.json()["id"]
    url = f"/api/attribution/training/{ref}/"
    seen, deadline = set(), time.monotonic() + 180
    while time.monotonic() < deadline:
        reply = client.get(url)
        if reply.status_code == 200:
            shown = reply.json()
            seen.add(shown["status"])
            if shown["status"] in ("done", "failed"):
                break
        time.sleep(0.2)
    assert shown["status"] == "done", shown["failure_reason"]
    job = TrainingAttribution.objects.get(generation_ref=ref)
    windows = sum(job.evidence["windows"].values())
    assert shown["progress"]["chunks_done"] == shown["progress"]["chunks_total"] == windows
    generation = GenerationRequest.objects.get(uid=ref)
    whole = unsharded_scores(generation, tmp_path / "whole")
    assert {int(r): s for r, s in job.evidence["mean"].items()} == whole


@pytest.mark.django_db
def test_bench_tda_prints_costs_per_number_of_windows_and_the_agreement(studio, tda_settings):
    tda_settings.TDA_CONFIG = FIRST_ORDER_TDA
    # no generation yet: the query is training window 1 under a fixed key, so the loss draws
    # and with them the projection's error (which vary with the query) are the same on every
    # run; a generation's draws are keyed by its random id and its Pearson ranged 0.93-0.9998
    out = StringIO()
    call_command("bench_tda", "--windows", "5,all,50", "--sample", "3", "--agreement",
                 "--json", stdout=out)  # fmt: skip
    text = out.getvalue()
    figures = json.loads(text[text.index("\n{") :])
    rows = figures["rows"]
    assert len(rows) == 3 and rows[0]["windows"] == 5 and rows[-1]["windows"] == 50
    costs = figures["costs"]
    assert costs["sample"] == 3 and costs["index_per_window"] > 0 and costs["query_gradient"] > 0
    # stages linear in the windows are costed per window: 10x the windows, 10x the index
    assert rows[-1]["index_s"] == pytest.approx(10 * rows[0]["index_s"])
    assert rows[-1]["exact_query_s"] > rows[0]["exact_query_s"]
    assert figures["projection"]["windows"] > 100_000
    agreement = figures["agreement"]
    # lr 1e-7: the linear regime; ranks too, as the query's own window dominates Pearson
    assert agreement["pearson_same_draws"] > 0.95, agreement
    assert agreement["spearman_same_draws"] > 0.95, agreement
    assert "query = training window 1" in text
    assert "agreement over all" in text and "projection" in text
    with pytest.raises(CommandError, match="--windows"):
        call_command("bench_tda", "--windows", "0", stdout=StringIO())


@pytest.mark.django_db
def test_first_order_method_records_the_regime_and_standard_errors(studio, make_user, tda_settings):
    tda_settings.TDA_CONFIG = FIRST_ORDER_TDA
    generation = generated(studio, make_user("maker"))
    job = training_attribution_run_here(
        job_id=TrainingAttribution.objects.get(generation_ref=generation.ref).pk
    )
    assert job.status == "done", job.failure_reason
    assert job.chunks_total == 1  # one product over the index: no passes to shard
    regime = job.evidence["regime"]
    assert job.evidence["method"] == "first_order"
    # lr 1e-7: the exact score of the probe windows is the first-order one
    assert regime["pearson"] > 0.99 and 0 < regime["own_loss_rise"] < 0.01
    assert all(e > 0 for e in job.evidence["standard_errors"].values())
    shown = (
        client_for(make_user("staff", staff=True))
        .get(f"/api/attribution/training/{generation.ref}/")
        .json()
    )
    assert shown["regime"]["pearson"] == regime["pearson"]
    assert all(c["standard_error"] > 0 and c["windows"] >= 2 for c in shown["contributors"])


@pytest.mark.django_db
@pytest.mark.parametrize("fallback", ["pending", "flat"])
def test_when_no_score_clears_its_noise_the_documented_fallback_applies(
    studio, make_user, tda_settings, fallback
):
    tda_settings.TDA_PAYOUT_MIN_Z = 1e9  # nothing can clear
    tda_settings.TDA_UNATTRIBUTED = fallback
    generation = generated(studio, make_user("maker"))
    job = TrainingAttribution.objects.get(generation_ref=generation.ref)
    job = training_attribution_run_here(job_id=job.pk)
    assert job.status == "done" and job.evidence["cleared"] == []
    fee = LedgerTransaction.objects.get(key=f"generation:{generation.ref}:fee")
    pool = -sum(e.amount_minor for e in fee.entries.filter(component="tda_pool"))
    if fallback == "pending":
        assert job.payout_share_kind == "unattributed" and job.shares["payout"] == {}
        assert not job.settlement_ref
        assert not LedgerTransaction.objects.filter(kind="tda_settlement").exists()
    else:
        training = set(studio["model_version"].training_recording_ids)
        assert job.payout_share_kind == "flat"
        assert set(map(int, job.shares["payout"])) == training
        settlement = LedgerTransaction.objects.get(key=job.settlement_ref)
        credited = [e for e in settlement.entries.all() if e.component == "tda"]
        assert -sum(e.amount_minor for e in credited) == pool
        per_recording = {}
        for entry in credited:
            per_recording[entry.recording_id] = (
                per_recording.get(entry.recording_id, 0) - entry.amount_minor
            )
        assert set(per_recording) == training
        assert max(per_recording.values()) - min(per_recording.values()) <= 1  # equal split


@pytest.mark.django_db
def test_a_softmax_payout_setting_is_refused(studio, make_user, tda_settings):
    tda_settings.TDA_PAYOUT_SHARES = "softmax"
    generation = generated(studio, make_user("maker"))
    job = TrainingAttribution.objects.get(generation_ref=generation.ref)
    assert job.status == "failed" and "softmax" in job.failure_reason


@pytest.mark.django_db
def test_a_standard_error_that_cannot_be_computed_fails_the_job_and_settles_nothing(
    studio, make_user, tda_settings
):
    tda_settings.TDA_CONFIG = TINY_TDA | {"loss_timesteps": 1}  # one draw: no spread to measure
    generation = generated(studio, make_user("maker"))
    job = training_attribution_run_here(
        job_id=TrainingAttribution.objects.get(generation_ref=generation.ref).pk
    )
    assert job.status == "failed" and "at least 2 replicates" in job.failure_reason
    assert job.scores is None and not job.settlement_ref
    assert not LedgerTransaction.objects.filter(kind="tda_settlement").exists()


@pytest.mark.django_db
def test_tda_validate_refuses_a_configuration_that_cannot_train(studio, tda_settings):
    with pytest.raises(CommandError, match="at least 8"):
        call_command("tda_validate", "--items", "4", stdout=StringIO())
    with pytest.raises(CommandError, match="consented to training; need 24"):
        call_command("tda_validate", stdout=StringIO())  # the studio has 4 such recordings
    with pytest.raises(CommandError, match="JSON object"):
        call_command("tda_validate", "--tda", "[1]", stdout=StringIO())
    with pytest.raises(CommandError, match="subset_fraction|subsets"):
        call_command("tda_validate", "--subsets", "1", stdout=StringIO())
