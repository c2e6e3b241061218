"""Training-time attribution and the similarity audit share the generation's job lifecycle:
an unexpected error fails the job with a reason (nothing stays running), a live worker's job
is not taken over, and the sweeper requeues or fails jobs whose heartbeat stopped."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from attribution import tasks
from attribution.models import SimilarityAudit, TrainingAttribution
from attribution.services import training
from attribution.services.audit import SIMILARITY_AUDIT_JOB, similarity_audit_run
from attribution.services.training import TRAINING_ATTRIBUTION_JOB, training_attribution_prepare
from jobs.lifecycle import JobBusy
from jobs.sweeping import jobs_sweep

pytestmark = pytest.mark.django_db


def tda_job(**fields) -> TrainingAttribution:
    return TrainingAttribution.objects.create(
        generation_ref=str(uuid.uuid4()), generation_requested_by=1, model_version_id=1,
        model_checkpoint_sha256="0" * 64, config={}, **fields,
    )  # fmt: skip


def audit_job(**fields) -> SimilarityAudit:
    return SimilarityAudit.objects.create(
        generation_ref=str(uuid.uuid4()), generation_requested_by=1, model_version_id=1, **fields
    )


def test_an_unexpected_error_in_a_tda_stage_fails_the_job_with_its_reason(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("CUDA driver went away")

    monkeypatch.setattr(training, "_attribution_run", broken)
    job = tda_job()
    with pytest.raises(RuntimeError):
        tasks.tda_prepare.run(job.pk)  # what the worker runs; Celery records the error too
    job.refresh_from_db()
    assert job.status == "failed" and job.attempts == 1
    assert job.failure_reason == "unexpected error (RuntimeError: CUDA driver went away)"


def test_an_unexpected_error_in_an_audit_fails_it_with_its_reason(monkeypatch):
    from attribution.services.audit import jobs as audit_service

    def broken(**kwargs):
        raise KeyError("clips")

    monkeypatch.setattr(audit_service, "audit_clip_spec", broken)
    monkeypatch.setattr(
        "generation.services.attribution_inputs.generated_output", lambda **kwargs: None
    )
    audit = audit_job()
    with pytest.raises(KeyError):
        tasks.similarity_audit_run.run(audit.pk)
    audit.refresh_from_db()
    assert (
        audit.status == "failed" and audit.failure_reason == "unexpected error (KeyError: 'clips')"
    )


def test_a_live_workers_tda_job_and_audit_are_left_to_it():
    now = timezone.now()
    job = tda_job(status="running", attempts=1, heartbeat_at=now)
    with pytest.raises(JobBusy):
        training_attribution_prepare(job_id=job.pk)
    audit = audit_job(status="running", attempts=1, heartbeat_at=now)
    with pytest.raises(JobBusy):
        similarity_audit_run(audit_id=audit.pk)
    assert TrainingAttribution.objects.get(pk=job.pk).attempts == 1


def test_the_sweeper_requeues_stale_jobs_of_every_kind_and_fails_those_out_of_attempts(
    monkeypatch, django_capture_on_commit_callbacks
):
    def stale(kind):
        return timezone.now() - kind.stale_after - timedelta(seconds=5)

    lost_tda = tda_job(status="running", attempts=1, heartbeat_at=stale(TRAINING_ATTRIBUTION_JOB))
    live_tda = tda_job(status="running", attempts=1, heartbeat_at=timezone.now())
    lost_audit = audit_job(status="running", attempts=2, heartbeat_at=stale(SIMILARITY_AUDIT_JOB))
    spent_audit = audit_job(status="running", attempts=3, heartbeat_at=stale(SIMILARITY_AUDIT_JOB))
    never_sent = audit_job()  # queued, its message lost: created long ago, no sign of life
    SimilarityAudit.objects.filter(pk=never_sent.pk).update(created_at=stale(SIMILARITY_AUDIT_JOB))
    sent = []
    monkeypatch.setattr(tasks.tda_prepare, "delay", lambda pk: sent.append(("tda", pk)))
    monkeypatch.setattr(tasks.similarity_audit_run, "delay", lambda pk: sent.append(("audit", pk)))
    with django_capture_on_commit_callbacks(execute=True):
        outcome = jobs_sweep()
    assert outcome["training attribution"].requeued == [lost_tda.pk]
    assert sorted(outcome["similarity audit"].requeued) == sorted([lost_audit.pk, never_sent.pk])
    assert outcome["similarity audit"].failed == [spent_audit.pk]
    assert sorted(sent) == sorted(
        [("tda", lost_tda.pk), ("audit", lost_audit.pk), ("audit", never_sent.pk)]
    )
    assert TrainingAttribution.objects.get(pk=live_tda.pk).status == "running"
    spent_audit.refresh_from_db()
    assert spent_audit.status == "failed" and "lost 3 times" in spent_audit.failure_reason
