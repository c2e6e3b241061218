"""A generation's lifecycle: the completion event reaches its receivers in order inside the
completing transaction; any error ends the generation failed with a reason (nothing stays
running); a live worker's job is not taken over, a lost one's is; the sweeper requeues or
fails jobs whose heartbeat stopped; a superseded attempt writes nothing."""

from __future__ import annotations

import os
import socket
import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone

from attribution_log.models import AttributionRecord
from generation import tasks
from generation.events import GenerationCompleted
from generation.models import GenerationRequest
from generation.services import running
from generation.services.running import GENERATION_JOB, generation_run
from jobs.lifecycle import JobBusy, holder_is_gone, job_sweep
from royalties.models import LedgerTransaction
from tests.generation.test_requests import client_for, submit, two_references

pytestmark = pytest.mark.django_db

RECEIVED: list[tuple[GenerationCompleted, bool]] = []


def record_event(event: GenerationCompleted) -> None:
    """A receiver listed after the fee: it sees the fee already posted in the transaction."""
    charged = LedgerTransaction.objects.filter(key=f"generation:{event.generation_ref}:fee")
    RECEIVED.append((event, charged.exists()))


def refuse_event(event: GenerationCompleted) -> None:
    raise RuntimeError("the ledger is read-only today")


def queued(studio, make_user, name: str = "maker") -> GenerationRequest:
    response = submit(
        client_for(make_user(name)),
        {"references": two_references(studio), "distribution": "commercial", "seconds": 1.5},
    )
    assert response.status_code == 201, response.json()
    return GenerationRequest.objects.get(uid=response.json()["id"])


def record_kinds(generation: GenerationRequest) -> list[str]:
    return list(
        AttributionRecord.objects.filter(generation_ref=generation.ref)
        .order_by("sequence")
        .values_list("kind", flat=True)
    )


def test_completion_event_reaches_the_receivers_in_order(studio, make_user, settings):
    settings.GENERATION_COMPLETED_RECEIVERS = [
        *settings.GENERATION_COMPLETED_RECEIVERS,
        "tests.generation.test_job_lifecycle.record_event",
    ]
    RECEIVED.clear()
    generation = generation_run(generation_id=queued(studio, make_user).pk)
    assert generation.status == "succeeded"
    [(event, fee_already_posted)] = RECEIVED
    assert fee_already_posted
    model_version = studio["model_version"]
    assert event.generation_ref == generation.ref
    assert event.requested_by_id == generation.requested_by_id
    assert event.model_version_id == model_version.pk
    assert event.model_checkpoint_sha256 == model_version.checkpoint_sha256
    assert event.training_recording_ids == tuple(model_version.training_recording_ids)
    assert event.distribution == "commercial" and event.verified_at == generation.verified_at
    assert [(r.recording_id, r.level, r.role, r.weight) for r in event.references] == [
        (studio["recordings"][4].pk, "song", "style", 2.0),
        (studio["recordings"][5].pk, "song", "mood", 1.0),
    ]
    assert record_kinds(generation)[-1] == "generation"  # published after the log record


def test_a_receivers_error_rolls_the_completion_back_and_fails_with_its_reason(
    studio, make_user, settings
):
    settings.GENERATION_COMPLETED_RECEIVERS = [
        *settings.GENERATION_COMPLETED_RECEIVERS,
        "tests.generation.test_job_lifecycle.refuse_event",
    ]
    generation = generation_run(generation_id=queued(studio, make_user).pk)
    assert generation.status == "failed"
    assert "the ledger is read-only today" in generation.failure_reason
    assert not generation.output and not generation.output_sha256
    assert not LedgerTransaction.objects.filter(key__contains=generation.ref).exists()
    assert record_kinds(generation) == ["verification", "verification", "generation_failed"]


def test_an_unexpected_error_fails_the_generation_instead_of_leaving_it_running(
    studio, make_user, monkeypatch
):
    def broken(*args, **kwargs):
        raise KeyError("embedding")

    monkeypatch.setattr(running, "generation_spec_for", broken)
    generation = generation_run(generation_id=queued(studio, make_user).pk)
    assert generation.status == "failed"
    assert generation.failure_reason == "unexpected error (KeyError: 'embedding')"
    assert record_kinds(generation)[-1] == "generation_failed"


def test_a_live_workers_job_is_left_to_it_and_a_lost_workers_job_is_run_again(studio, make_user):
    generation = queued(studio, make_user)
    GenerationRequest.objects.filter(pk=generation.pk).update(
        status="running", attempts=1, heartbeat_at=timezone.now()
    )
    with pytest.raises(JobBusy) as busy:  # the task retries it once the heartbeat is stale
        generation_run(generation_id=generation.pk)
    assert 0 < busy.value.retry_in <= GENERATION_JOB.stale_after.total_seconds() + 1
    assert GenerationRequest.objects.get(pk=generation.pk).status == "running"

    GenerationRequest.objects.filter(pk=generation.pk).update(
        heartbeat_at=timezone.now() - GENERATION_JOB.stale_after - timedelta(seconds=1)
    )
    generation = generation_run(generation_id=generation.pk)
    assert generation.status == "succeeded" and generation.attempts == 2
    assert record_kinds(generation).count("generation") == 1
    assert LedgerTransaction.objects.filter(key=f"generation:{generation.ref}:fee").count() == 1


def test_the_task_retries_a_busy_job_instead_of_dropping_it(studio, make_user, monkeypatch):
    generation = queued(studio, make_user)
    GenerationRequest.objects.filter(pk=generation.pk).update(
        status="running", attempts=1, heartbeat_at=timezone.now()
    )
    retried = {}

    def retry(**kwargs):
        retried.update(kwargs)
        return RuntimeError("retry")

    monkeypatch.setattr(tasks.generation_run, "retry", retry)
    with pytest.raises(RuntimeError, match="retry"):
        tasks.generation_run.run(generation.pk)
    assert retried["max_retries"] is None and 0 < retried["countdown"] <= 121


def test_the_sweeper_requeues_a_stale_job_and_fails_one_out_of_attempts(
    studio, make_user, monkeypatch, django_capture_on_commit_callbacks
):
    stale = timezone.now() - GENERATION_JOB.stale_after - timedelta(seconds=5)
    lost, exhausted, live = (queued(studio, make_user, f"maker-{i}") for i in range(3))
    GenerationRequest.objects.filter(pk=lost.pk).update(
        status="running", attempts=1, heartbeat_at=stale
    )
    GenerationRequest.objects.filter(pk=exhausted.pk).update(
        status="running", attempts=GENERATION_JOB.max_attempts, heartbeat_at=stale
    )
    GenerationRequest.objects.filter(pk=live.pk).update(
        status="running", attempts=1, heartbeat_at=timezone.now()
    )
    sent = []
    monkeypatch.setattr(tasks.generation_run, "delay", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = job_sweep(GENERATION_JOB)
    assert outcome.requeued == [lost.pk] and outcome.failed == [exhausted.pk]
    assert sent == [lost.pk]
    assert GenerationRequest.objects.get(pk=lost.pk).status == "queued"
    exhausted.refresh_from_db()
    assert exhausted.status == "failed"
    assert exhausted.failure_reason == "the worker was lost 3 times; giving up"
    assert record_kinds(exhausted)[-1] == "generation_failed"
    assert GenerationRequest.objects.get(pk=live.pk).status == "running"

    with django_capture_on_commit_callbacks(execute=True):  # requeued at most once a period
        assert job_sweep(GENERATION_JOB).requeued == []


def test_an_attempt_that_was_superseded_writes_nothing(studio, make_user, monkeypatch):
    generation = queued(studio, make_user)
    real = running.generation_spec_for

    def taken_over(generation, *args):  # the sweeper gave this attempt up; another claimed
        GenerationRequest.objects.filter(pk=generation.pk).update(attempts=generation.attempts + 1)
        return real(generation, *args)

    monkeypatch.setattr(running, "generation_spec_for", taken_over)
    result = generation_run(generation_id=generation.pk)
    assert result.status == "running" and result.attempts == 2
    assert "generation" not in record_kinds(generation)
    assert not LedgerTransaction.objects.filter(key__contains=generation.ref).exists()


def test_a_job_whose_worker_process_is_gone_is_taken_over_at_once(
    studio, make_user, monkeypatch, django_capture_on_commit_callbacks
):
    dead = subprocess.Popen(["true"])  # a process that has exited: its pid is free
    dead.wait()
    here = socket.gethostname()
    assert holder_is_gone(f"{here}:{dead.pid}")
    assert not holder_is_gone(f"{here}:{os.getpid()}")
    assert not holder_is_gone(f"another-host:{dead.pid}")  # elsewhere: only the heartbeat tells

    killed, swept = (queued(studio, make_user, f"maker-{i}") for i in range(2))
    for generation in (killed, swept):  # fresh heartbeats, but the holder was SIGKILLed
        GenerationRequest.objects.filter(pk=generation.pk).update(
            status="running", attempts=1, heartbeat_at=timezone.now(), worker=f"{here}:{dead.pid}"
        )
    sent = []
    monkeypatch.setattr(tasks.generation_run, "delay", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = job_sweep(GENERATION_JOB)
    assert sorted(outcome.requeued) == sorted([killed.pk, swept.pk]) and len(sent) == 2
    result = generation_run(generation_id=killed.pk)  # the redelivered task, in a new worker
    assert result.status == "succeeded" and result.attempts == 2
    assert result.worker == f"{here}:{os.getpid()}"
