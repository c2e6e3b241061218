"""When training consent is revoked for a recording the served generator learned from, remove
it from the model instead of withdrawing the model until someone retrains (issue 19).

  schedule  a consent change (catalog/events.py) that leaves recordings of the served model's
            manifest without training consent opens, or extends, one pending job per model;
            revocations within settings.UNLEARNING_BATCH_SECONDS join it; a re-grant before it
            starts takes the recording out again (an empty job is cancelled)
  run       on the attribution queue: Fisher-preconditioned ascent on the revoked recordings'
            windows until a membership test cannot tell them from comparable held-out
            recordings, a short repair fine-tune on the retained training data only
            (attribution/tda/removal.py), then verification
  verify    membership percentile in band; retained loss change within tolerance; the
            conditioning gap of new outputs and their Frechet distance (CLAP space) to
            held-out audio within tolerance of the old model's (same references and seeds);
            no new output a near copy of a revoked recording (the
            similarity audit's search); self-influence: unlearning a revoked recording's own
            windows no longer raises its loss more than any held-out recording's, and less
            than before (the last three in attribution/services/unlearning_checks.py)
  serve     only when every check passes and the revocations still stand: the new version
            (manifest without the recordings, its parent, the method and its settings) is
            registered and activated; otherwise the previous behaviour (withdrawal) applies
            and the job says why

Once its batch closes the job follows the platform's job lifecycle (jobs/lifecycle.py): claimed
with a heartbeat, requeued by the sweeper when its worker dies, failed after three lost tries.
"""

from __future__ import annotations

import copy
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from attribution.models import ModelUnlearning
from attribution.services.unlearning_checks import quality_check, self_influence_check
from attribution.tda import TDAConfig, TDAError, compute_fisher
from attribution.tda.platform_model import PlatformTarget, TrainingWindow, platform_manifest
from attribution.tda.removal import RemovalConfig, remove_recordings
from catalog.models import Recording, Use
from catalog.selectors import recordings_permitting
from config.exceptions import DomainError
from generation.model import (
    Generator,
    GeneratorError,
    GeneratorTrainingItem,
    TrainConfig,
    save_generator,
    train_generator,
)
from generation.model.training import window_starts
from generation.models import ModelVersion
from generation.selectors import model_version_revoked_recordings
from generation.services.attribution_inputs import (
    model_version_generator,
    model_version_training_items,
)
from generation.services.models import model_version_register, training_items
from jobs.lifecycle import JobKind, heartbeat_writer, job_claim

log = logging.getLogger(__name__)
JOB_ERRORS = (TDAError, DomainError, GeneratorError, OSError, ValueError)


def unlearning_settings() -> dict[str, Any]:
    defaults = {
        "batch_seconds": 60, "heldout_recordings": 16, "min_heldout": 3, "membership_windows": 3,
        "influence_windows": 3,
        "ascent_windows": 12, "retained_windows": 24, "fisher_items": 24,
        "repair_steps": 150, "repair_learning_rate": 2e-5, "repair_ema_decay": 0.99,
        "repair_seconds": 240,
        "quality_generations": 16, "quality_others": 6, "quality_seconds": 6.0,
        "gap_tolerance": 0.05, "fd_tolerance": 0.10, "influence_learning_rate": 1e-6,
        "removal": {},
    }  # fmt: skip
    return {**defaults, **getattr(settings, "UNLEARNING", {})}


# --- schedule -------------------------------------------------------------------------------


@transaction.atomic
def model_unlearning_schedule(*, recording_ids: tuple[int, ...] = ()) -> ModelUnlearning | None:
    """Bring the served model's pending job in line with today's training consent; called in
    the transaction of a consent change. Returns the pending job, if there is one."""
    source = ModelVersion.objects.filter(is_active=True).first()
    if source is None or (recording_ids and not set(recording_ids) & set(
        source.training_recording_ids
    )):  # fmt: skip
        return None  # not in any served manifest: nothing to do
    revoked = set(model_version_revoked_recordings(model_version=source))
    running = ModelUnlearning.objects.filter(
        source_model_version=source, status__in=UNLEARNING_RUNS
    )
    in_progress = {rid for job in running for rid in job.recording_ids}
    wanted = sorted(revoked - in_progress)  # a running job's recordings are not asked twice
    pending = (
        ModelUnlearning.objects.select_for_update()
        .filter(source_model_version=source, status=ModelUnlearning.Status.PENDING)
        .first()
    )
    if pending is not None:
        if not wanted:
            _finish(pending, ModelUnlearning.Status.CANCELLED, "training consent was granted again")
            return None
        if wanted != pending.recording_ids:
            pending.recording_ids = wanted
            pending.save(update_fields=["recording_ids"])
        return pending
    if not wanted:
        return None
    job = ModelUnlearning.objects.create(
        source_model_version=source,
        recording_ids=wanted,
        not_before=timezone.now() + timedelta(seconds=unlearning_settings()["batch_seconds"]),
    )
    _queue(job)
    return job


def _queue(job: ModelUnlearning) -> None:
    from attribution import tasks

    delay = max(0.0, (job.not_before - timezone.now()).total_seconds())
    transaction.on_commit(
        lambda: tasks.model_unlearning_run.apply_async((job.pk,), countdown=delay), robust=True
    )


def _finish(job: ModelUnlearning, status: str, reason: str = "", **fields: Any) -> None:
    job.status, job.failure_reason, job.finished_at = status, reason[:500], timezone.now()
    for name, value in fields.items():
        setattr(job, name, value)
    job.save()
    log.info("unlearning %s %s %s", job.pk, status, reason)


# --- run ------------------------------------------------------------------------------------


def model_unlearning_fail(*, job_id: int, reason: str) -> None:
    """End an unfinished job (the lifecycle's path for lost workers and unexpected errors)."""
    ModelUnlearning.objects.filter(pk=job_id, status__in=UNLEARNING_RUNS).update(
        status=ModelUnlearning.Status.FAILED, failure_reason=reason[:500],
        finished_at=timezone.now(),
    )  # fmt: skip
    log.warning("unlearning %s failed: %s", job_id, reason)


def _queue_run(job_id: int) -> None:
    from attribution import tasks

    tasks.model_unlearning_run.delay(job_id)


UNLEARNING_RUNS = (ModelUnlearning.Status.QUEUED, ModelUnlearning.Status.RUNNING)
UNLEARNING_JOB = JobKind(
    name="model unlearning",
    model=ModelUnlearning,
    queued=ModelUnlearning.Status.QUEUED,
    running=ModelUnlearning.Status.RUNNING,
    finished=(ModelUnlearning.Status.SERVED, ModelUnlearning.Status.FAILED,
              ModelUnlearning.Status.CANCELLED),
    requeue=_queue_run,  # a requeued job starts again from the served weights
    fail=lambda pk, reason: model_unlearning_fail(job_id=pk, reason=reason),
    # progress is written at every ascent and repair step and per self-influence recording
    stale_after=timedelta(minutes=10),
    waiting=ModelUnlearning.Status.PENDING,  # the batch window; the task closes it
    waiting_until="not_before",
)  # fmt: skip


def model_unlearning_run(*, job_id: int) -> ModelUnlearning:
    """Run a job whose batching window has passed (a task calls this). Raises `JobBusy` while
    another live worker holds it."""
    with transaction.atomic():
        job = ModelUnlearning.objects.select_for_update().get(pk=job_id)
        if job.status == ModelUnlearning.Status.PENDING:
            if timezone.now() < job.not_before:  # woke early: wait for the batch to close
                _queue(job)
                return job
            revoked = sorted(set(job.recording_ids) & set(
                model_version_revoked_recordings(model_version=job.source_model_version)
            ))  # fmt: skip
            if not revoked:
                reason = "training consent was granted again"
                _finish(job, ModelUnlearning.Status.CANCELLED, reason)
                return job
            job.recording_ids, job.status = revoked, ModelUnlearning.Status.QUEUED
            job.save(update_fields=["recording_ids", "status"])  # the batch is closed
    claimed = job_claim(UNLEARNING_JOB, job_id)
    if claimed is None:  # finished, or failed out of attempts
        return ModelUnlearning.objects.get(pk=job_id)
    job, source, revoked = claimed, claimed.source_model_version, claimed.recording_ids
    if not source.is_active:
        _finish(job, ModelUnlearning.Status.CANCELLED, f"{source} is no longer served")
        return job
    try:
        outcome = _remove(job, source, revoked)
    except JOB_ERRORS as exc:
        _finish(job, ModelUnlearning.Status.FAILED, f"{type(exc).__name__}: {exc}")
        return job
    with transaction.atomic():
        holder = job.worker
        job = ModelUnlearning.objects.select_for_update().get(pk=job.pk)
        if job.status != ModelUnlearning.Status.RUNNING or job.worker != holder:
            return job  # the sweeper gave it to another worker (or failed it) meanwhile
        still = set(model_version_revoked_recordings(model_version=source))
        report = outcome["report"]
        if not set(revoked) <= still:  # re-granted while it ran: serve nothing, start over
            reason = "training consent was granted again while the job ran"
            _finish(job, ModelUnlearning.Status.CANCELLED, reason, report=report)
            model_unlearning_schedule()
            return job
        failed = [name for name, check in report["checks"].items() if not check["passed"]]
        if failed:
            _finish(job, ModelUnlearning.Status.FAILED,
                    f"verification failed: {', '.join(failed)}; the model stays withdrawn",
                    report=report)  # fmt: skip
            return job
        version = model_version_register(
            checkpoint_path=outcome["checkpoint"],
            encoder_version=source.encoder,
            training_manifest=outcome["manifest"],
            activate=ModelVersion.objects.filter(pk=source.pk, is_active=True).exists(),
        )
        _finish(job, ModelUnlearning.Status.SERVED, report=report, result_model_version=version)
        model_unlearning_schedule()  # revocations that came while it ran
    return job


def _progress(job: ModelUnlearning):
    beat = heartbeat_writer(UNLEARNING_JOB, job.pk)

    def write(stage: str, done: int, total: int) -> None:
        beat(final=done >= total, progress={"stage": stage, "done": done, "total": total})

    return write


def recording_windows(
    target: PlatformTarget, item: GeneratorTrainingItem, count: int, config
) -> list:
    starts = window_starts(item, config)
    chosen = [starts[int(k)] for k in np.linspace(0, len(starts) - 1, min(count, len(starts)))]
    return [target.example(TrainingWindow(item, start)) for start in dict.fromkeys(chosen)]


def heldout_recordings(source: ModelVersion, revoked: list[int], count: int) -> list[Recording]:
    """Comparable recordings the model never trained on: permitted for song-level inference
    (audio the platform already compares with outputs), the revoked ones' genres first, then
    the closest in length."""
    trained = set(source.training_recording_ids)
    pool = [
        r for r in recordings_permitting(use=Use.SONG_INFERENCE).order_by("pk")
        if r.pk not in trained
    ]  # fmt: skip
    targets = Recording.objects.filter(pk__in=revoked)
    genres = {r.genre for r in targets}
    length = float(np.mean([r.duration_seconds for r in targets]))
    pool.sort(key=lambda r: (r.genre not in genres, abs(r.duration_seconds - length), r.pk))
    return pool[:count]


def _remove(job: ModelUnlearning, source: ModelVersion, revoked: list[int]) -> dict[str, Any]:
    options = unlearning_settings()
    started = time.monotonic()
    progress = _progress(job)
    generator = model_version_generator(model_version_id=source.pk)
    config = generator.config
    items = model_version_training_items(model_version_id=source.pk)
    retained_items = [i for i in items if i.recording_id not in revoked]
    revoked_items = [i for i in items if i.recording_id in revoked]
    heldout = heldout_recordings(source, revoked, options["heldout_recordings"])
    if len(heldout) < options["min_heldout"] or not retained_items:
        raise ValueError(
            f"need at least {options['min_heldout']} held-out recordings and a retained set "
            f"(have {len(heldout)} and {len(retained_items)})"
        )
    heldout_items = training_items(
        recordings=heldout, encoder_version=source.encoder, config=config
    )
    target = PlatformTarget(config)
    model = target.prepare(copy.deepcopy(generator.model).cpu())
    m = options["membership_windows"]
    revoked_windows = {
        i.recording_id: recording_windows(target, i, m, config) for i in revoked_items
    }
    heldout_windows = {
        i.recording_id: recording_windows(target, i, m, config) for i in heldout_items
    }
    ascent = {i.recording_id: recording_windows(target, i, options["ascent_windows"], config)
              for i in revoked_items}  # fmt: skip
    spread = np.linspace(0, len(retained_items) - 1, options["retained_windows"]).astype(int)
    retained = [target.example(TrainingWindow(retained_items[k], 0)) for k in spread]
    removal = RemovalConfig(**options["removal"])
    fisher = compute_fisher(
        target, model, platform_manifest(retained_items, config, coverage="first"),
        TDAConfig(fisher_items=options["fisher_items"], fisher_timesteps=4, loss_mask=True,
                  device="cpu"),
        model_version=str(source), group=removal.layer_group,
    )  # fmt: skip
    progress("fisher", 1, 1)

    repair_train = TrainConfig(
        steps=options["repair_steps"], learning_rate=options["repair_learning_rate"],
        warmup_steps=10, ema_decay=options["repair_ema_decay"],
        time_budget_seconds=options["repair_seconds"],
        device="cpu", seed=job.pk,
    )  # fmt: skip

    def repair(state):
        report = train_generator(
            retained_items, config, repair_train, parent=Generator(state, config, device="cpu"),
            progress=lambda step, total, loss: progress("repair", step, total),
        )  # fmt: skip
        repair.report = report
        return target.prepare(report.generator.model.cpu())

    # the ascent pushes up `ascent_windows` windows; membership compares `m` per recording
    repaired, removal_report = remove_recordings(
        target, model, revoked=revoked_windows, heldout=heldout_windows, retained=retained,
        fisher=fisher, config=removal, repair=repair, ascent=ascent, progress=progress,
    )  # fmt: skip
    new = Generator(repaired, config, device=generator.device)
    moved = removal_report.steps > 0  # else the new weights are the old: measure them once
    influence = self_influence_check(
        target, model, repaired, revoked_windows, heldout_windows, fisher, removal, options,
        n_items=len(items), progress=progress, moved=moved,
    )  # fmt: skip
    quality = quality_check(
        source, generator, new, revoked, options, [r.pk for r in heldout], moved=moved
    )
    quality["checks"]["self_influence"] = influence
    report = removal_report.to_dict(removal)
    report["checks"].update(quality.pop("checks"))
    report.update(quality)
    report["heldout_recordings"] = [r.pk for r in heldout]
    repaired_by = getattr(repair, "report", None)  # None: no ascent step, nothing to repair
    report["repair"] = {
        "steps": repaired_by.steps_done if repaired_by else 0,
        "settings": repair_train.to_dict(),
        "final_loss": repaired_by.final_loss if repaired_by else None,
    }
    report["seconds"]["total"] = round(time.monotonic() - started, 1)
    checkpoint = Path(settings.GENERATOR_CHECKPOINT_DIR) / f"unlearned-{job.pk}.pt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(source, revoked, job, report)
    save_generator(checkpoint, new, {"unlearning": manifest["unlearning"]})
    return {"report": report, "checkpoint": checkpoint, "manifest": manifest}


def _manifest(
    source: ModelVersion, revoked: list[int], job: ModelUnlearning, report: dict[str, Any]
) -> dict[str, Any]:
    manifest = copy.deepcopy(source.training_manifest)
    manifest["recordings"] = [r for r in manifest["recordings"] if r["id"] not in revoked]
    manifest["fingerprint"] = f"unlearned:{source.checkpoint_sha256[:12]}:{job.pk}"
    manifest["unlearning"] = {
        "parent": {"version": str(source), "checkpoint_sha256": source.checkpoint_sha256},
        "removed_recordings": revoked,
        "job": job.pk,
        "method": "Fisher-preconditioned ascent on the removed recordings' windows (seed 000 "
        "Eq. 6 on training data), stopped by a membership test, then a repair fine-tune on "
        "the retained data only",
        "settings": {"removal": report["config"], "repair": report["repair"]["settings"]},
        "verification": report["checks"],
    }
    return manifest


def recording_removal_status(*, recording_id: int) -> dict[str, Any] | None:
    """What the portal says about a recording's removal from the served model, if anything."""
    job = (
        ModelUnlearning.objects.filter(recording_ids__contains=[recording_id])
        .order_by("-created_at")
        .first()
    )
    if job is None:
        return None
    return {
        "status": job.status,
        "label": job.get_status_display(),
        "verified_at": job.finished_at if job.status == ModelUnlearning.Status.SERVED else None,
        "reason": job.failure_reason,
    }
