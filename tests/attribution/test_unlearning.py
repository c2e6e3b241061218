"""Removing a recording from the served generator when its training consent is revoked (issue
19): the job is scheduled by the consent change, batched, cancelled by a re-grant, and serves a
new version only when verification passes. A tiny generator trained on four of six recordings
(tests/generation/conftest.py `studio`); the two it never saw are the held-out set."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from attribution.models import ModelUnlearning
from attribution.services import unlearning
from attribution.services.unlearning import model_unlearning_run, recording_removal_status
from catalog.services.consent import consent_grant, consent_revoke
from generation.models import ModelVersion
from generation.selectors import NoServableModel, servable_model_version
from tests.catalog.retrieval_fixtures import tiny_checkpoint  # noqa: F401
from tests.generation.conftest import TRAINED, embedded_catalogue, pricing, studio  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("one_torch_thread")]

TINY = {
    "batch_seconds": 60, "heldout_recordings": 2, "min_heldout": 2, "membership_windows": 1,
    "ascent_windows": 2, "retained_windows": 3, "fisher_items": 3, "repair_steps": 20,
    "repair_learning_rate": 5e-4, "repair_ema_decay": 0.9, "repair_seconds": 60,
    "quality_generations": 2, "quality_others": 2, "quality_seconds": 2.0, "gap_tolerance": 1.0,
    "removal": {"loss_draws": 8, "step_fraction": 0.02, "max_steps": 15,
                "target_percentile": 50.0, "band": [0.0, 100.0], "act_below": 50.0,
                "retained_tolerance": 0.5},
}  # fmt: skip


@pytest.fixture
def unlearning_on(settings, studio):  # noqa: F811
    """The studio world with removal on and the similarity audit ready (its clips embedded and
    calibrated with the tiny encoder), as the near-copy check needs."""
    from attribution.audit import CalibrationConfig
    from attribution.services.audit import catalogue_clips_embed, clip_calibrate

    settings.UNLEARNING_ON_REVOCATION = True
    settings.UNLEARNING = TINY
    settings.CELERY_TASK_ALWAYS_EAGER = False
    catalogue_clips_embed()
    clip_calibrate(config=CalibrationConfig(sample_clips=50))
    return studio


def revoke(world, recording):
    consent_revoke(actor=world["member"], holder=world["holder"], recording=recording,
                   uses=["training"])  # fmt: skip


def grant(world, recording):
    consent_grant(actor=world["member"], holder=world["holder"], recording=recording,
                  uses=["training"])  # fmt: skip


def due(job: ModelUnlearning) -> None:
    ModelUnlearning.objects.filter(pk=job.pk).update(not_before=timezone.now() - timedelta(1))


def test_revocations_are_batched_into_one_job_and_a_regrant_takes_them_out(unlearning_on):
    world = unlearning_on
    first, second = world["recordings"][0], world["recordings"][1]
    never_trained = world["recordings"][TRAINED]
    revoke(world, never_trained)  # not in the served manifest: nothing to remove
    assert not ModelUnlearning.objects.exists()
    revoke(world, first)
    revoke(world, second)
    (job,) = ModelUnlearning.objects.all()
    assert job.status == "pending" and job.recording_ids == sorted([first.pk, second.pk])
    assert job.source_model_version == world["model_version"]
    assert recording_removal_status(recording_id=first.pk)["status"] == "pending"
    grant(world, first)
    job.refresh_from_db()
    assert job.recording_ids == [second.pk]
    grant(world, second)
    job.refresh_from_db()
    assert job.status == "cancelled" and "granted again" in job.failure_reason
    # a woken job that is cancelled does nothing
    assert model_unlearning_run(job_id=job.pk).status == "cancelled"


def test_a_verified_removal_is_served_and_the_studio_generates_again(
    unlearning_on, client, settings
):
    """The serving path. The tiny generator is so overfit that an ascent leaves the recording
    ranking first in self-influence (next test), so here no ascent step is allowed: the weights
    stay, the manifest drops the recording, and every check must still pass to serve it (as for
    the demo recordings the model did not lean on)."""
    world = unlearning_on
    settings.UNLEARNING = {**TINY, "removal": {**TINY["removal"], "max_steps": 0}}
    source = world["model_version"]
    revoked = world["recordings"][0]
    revoke(world, revoked)
    with pytest.raises(NoServableModel):  # withdrawn while the job waits and runs
        servable_model_version()
    job = ModelUnlearning.objects.get()
    assert model_unlearning_run(job_id=job.pk).status == "pending"  # before the batch closes
    due(job)
    job = model_unlearning_run(job_id=job.pk)
    assert job.status == "served", (job.failure_reason, job.report.get("checks"))
    new = job.result_model_version
    assert new.is_active and servable_model_version() == new
    assert revoked.pk not in new.training_recording_ids
    assert sorted(new.training_recording_ids) == sorted(
        r.pk for r in world["recordings"][1:TRAINED]
    )
    removal = new.training_manifest["unlearning"]
    assert removal["parent"]["checkpoint_sha256"] == source.checkpoint_sha256
    assert removal["removed_recordings"] == [revoked.pk]
    assert set(removal["verification"]) == {
        "membership", "retained_loss", "conditioning_gap", "clap_frechet", "no_near_copy",
        "self_influence",
    }  # fmt: skip
    assert job.report["checks"]["no_near_copy"]["audit"] == "run"
    frechet = job.report["checks"]["clap_frechet"]  # no weight moved: the same outputs
    assert frechet["before"]["fd"] == frechet["after"]["fd"] and frechet["before"]["vectors"] > 2
    influence = job.report["checks"]["self_influence"]
    assert set(influence["scores_after"]) == {str(revoked.pk), *(
        str(r.pk) for r in world["recordings"][TRAINED:]
    )}  # fmt: skip
    assert influence["passed"]
    report = job.report
    assert (report["repair"]["steps"] >= 1) == (report["ascent_steps"] >= 1)
    assert set(report["heldout_recordings"]) == {r.pk for r in world["recordings"][TRAINED:]}
    status = recording_removal_status(recording_id=revoked.pk)
    assert status["status"] == "served" and status["verified_at"] is not None
    client.force_login(world["member"])
    page = client.get(f"/portal/holders/{world['holder'].pk}/").content.decode()
    assert "Removal from the model: done, verified on" in page


def test_an_ascent_that_leaves_it_first_in_self_influence_is_not_served(unlearning_on):
    """Ascent on an overfit tiny model pushes the recording's loss up but leaves it on a slope:
    unlearning its own windows then raises its loss more than any held-out recording's. The
    attribution check sees that and nothing is served."""
    world = unlearning_on
    revoked = world["recordings"][0]
    revoke(world, revoked)
    job = ModelUnlearning.objects.get()
    due(job)
    job = model_unlearning_run(job_id=job.pk)
    assert job.report["ascent_steps"] >= 1
    verdict = job.report["checks"]["self_influence"]["recordings"][str(revoked.pk)]
    assert verdict["ranks_first"] and not job.report["checks"]["self_influence"]["passed"]
    assert job.status == "failed" and "self_influence" in job.failure_reason
    assert ModelVersion.objects.get(is_active=True) == world["model_version"]


def test_a_failed_verification_serves_nothing_and_says_why(unlearning_on, settings):
    world = unlearning_on
    settings.UNLEARNING = {**TINY, "removal": {**TINY["removal"], "retained_tolerance": 1e-12}}
    revoke(world, world["recordings"][0])
    job = ModelUnlearning.objects.get()
    due(job)
    job = model_unlearning_run(job_id=job.pk)
    assert job.status == "failed" and "retained_loss" in job.failure_reason
    assert job.result_model_version is None
    assert ModelVersion.objects.get(is_active=True) == world["model_version"]
    with pytest.raises(NoServableModel):
        servable_model_version()  # the previous behaviour: withdrawn
    assert job.report["checks"]["retained_loss"]["passed"] is False


def test_a_regrant_while_it_runs_cancels_it_and_nothing_is_served(unlearning_on, monkeypatch):
    world = unlearning_on
    revoked = world["recordings"][0]
    revoke(world, revoked)
    job = ModelUnlearning.objects.get()
    due(job)
    real = unlearning._remove

    def regranted_midway(job, source, ids):
        grant(world, revoked)
        return real(job, source, ids)

    monkeypatch.setattr(unlearning, "_remove", regranted_midway)
    job = model_unlearning_run(job_id=job.pk)
    assert job.status == "cancelled" and "while the job ran" in job.failure_reason
    assert ModelVersion.objects.get(is_active=True) == world["model_version"]
    assert servable_model_version() == world["model_version"]  # consent is back


def test_a_job_whose_worker_died_is_requeued_by_the_sweeper_and_run_again(
    unlearning_on, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """The job lifecycle: a live worker's job is left to it; one whose heartbeat stopped is
    requeued by the sweeper and runs to the end; one lost three times fails with the reason."""
    from attribution import tasks
    from attribution.services.unlearning import UNLEARNING_JOB
    from jobs.lifecycle import JobBusy
    from jobs.sweeping import jobs_sweep

    world = unlearning_on
    settings.UNLEARNING = {**TINY, "removal": {**TINY["removal"], "max_steps": 0}}
    revoked = world["recordings"][0]
    revoke(world, revoked)
    job = ModelUnlearning.objects.get()
    due(job)
    held = dict(status="running", attempts=1, worker="another-host:4242")
    ModelUnlearning.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now(), **held)
    with pytest.raises(JobBusy):  # alive elsewhere: delivered again later, not run twice
        model_unlearning_run(job_id=job.pk)
    stale = timezone.now() - UNLEARNING_JOB.stale_after - timedelta(seconds=5)
    ModelUnlearning.objects.filter(pk=job.pk).update(heartbeat_at=stale)
    sent = []
    monkeypatch.setattr(tasks.model_unlearning_run, "delay", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = jobs_sweep()
    assert outcome["model unlearning"].requeued == [job.pk] and sent == [job.pk]
    assert ModelUnlearning.objects.get(pk=job.pk).status == "queued"
    assert recording_removal_status(recording_id=revoked.pk)["status"] == "queued"
    job = model_unlearning_run(job_id=job.pk)
    assert job.status == "served" and job.attempts == 2

    grant(world, revoked)
    revoke(world, world["recordings"][1])
    again = ModelUnlearning.objects.get(status="pending")
    ModelUnlearning.objects.filter(pk=again.pk).update(heartbeat_at=stale, attempts=3, **{
        k: v for k, v in held.items() if k != "attempts"
    })  # fmt: skip
    assert jobs_sweep()["model unlearning"].failed == [again.pk]
    again.refresh_from_db()
    assert again.status == "failed" and "lost 3 times" in again.failure_reason


def test_a_batch_whose_message_was_lost_is_sent_again_once_it_is_overdue(
    unlearning_on, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """The task is sent with a countdown to the batch's close; if that message is lost, the
    sweeper sends it again once the batch is `stale_after` overdue, once per `stale_after`."""
    from attribution import tasks
    from attribution.services.unlearning import UNLEARNING_JOB
    from jobs.sweeping import jobs_sweep

    world = unlearning_on
    settings.UNLEARNING = {**TINY, "removal": {**TINY["removal"], "max_steps": 0}}
    revoke(world, world["recordings"][0])
    job = ModelUnlearning.objects.get()
    sent = []
    monkeypatch.setattr(tasks.model_unlearning_run, "delay", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_sweep()["model unlearning"].requeued == []  # the batch is still open
    overdue = timezone.now() - UNLEARNING_JOB.stale_after - timedelta(seconds=5)
    ModelUnlearning.objects.filter(pk=job.pk).update(not_before=overdue)
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_sweep()["model unlearning"].requeued == [job.pk]
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_sweep()["model unlearning"].requeued == []  # not again at once
    assert sent == [job.pk]
    job = model_unlearning_run(job_id=job.pk)  # the resent task closes the batch and runs
    assert job.status == "served"


def test_a_near_copy_audit_that_cannot_run_does_not_pass(unlearning_on, settings):
    from attribution.models import ClipCalibration

    world = unlearning_on
    settings.UNLEARNING = {**TINY, "removal": {**TINY["removal"], "max_steps": 0}}
    ClipCalibration.objects.all().delete()  # the audit has no flag to apply
    revoke(world, world["recordings"][0])
    job = ModelUnlearning.objects.get()
    due(job)
    job = model_unlearning_run(job_id=job.pk)
    check = job.report["checks"]["no_near_copy"]
    assert job.status == "failed" and "no_near_copy" in job.failure_reason
    assert not check["passed"] and check["audit"].startswith("not run")


def test_the_membership_scan_reads_what_the_removal_job_measures_and_changes_nothing(
    unlearning_on, settings
):
    """`bench_unlearning --scan`: each training recording's percentile is the one the job's
    membership test finds for it before any step, lowest first; unknown recordings refused."""
    from attribution.services.membership_scan import membership_scan
    from config.exceptions import InvalidInput

    world = unlearning_on
    settings.UNLEARNING = {**TINY, "removal": {**TINY["removal"], "max_steps": 0}}
    served = world["model_version"]
    rows = membership_scan(model_version=served)
    assert sorted(r["recording"] for r in rows) == sorted(served.training_recording_ids)
    assert [r["percentile"] for r in rows] == sorted(r["percentile"] for r in rows)
    assert not ModelUnlearning.objects.exists()
    with pytest.raises(InvalidInput, match="not in the manifest"):
        membership_scan(model_version=served, recording_ids=[world["recordings"][TRAINED].pk])

    revoked = world["recordings"][0]
    scanned = next(r for r in rows if r["recording"] == revoked.pk)
    revoke(world, revoked)
    job = ModelUnlearning.objects.get()
    due(job)
    job = model_unlearning_run(job_id=job.pk)
    before = job.report["membership_before"]
    assert before["percentile"][str(revoked.pk)] == scanned["percentile"]
    assert before["revoked_loss"][str(revoked.pk)] == pytest.approx(scanned["loss"], abs=1e-6)
