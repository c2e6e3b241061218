"""Training-time attribution jobs: every completed generation is attributed to the recordings
its model version was trained on (seed 000: unlearn the generated sample, score every training
item by its loss increase), then the TDA pool of its fee is settled by the normalised shares.

Stages, each a Celery task on the `gpu` queue (see attribution/tasks.py):
  prepare  Fisher of the model version (computed once, shared), unlearning of the sample;
           returns the manifest's chunks
  score    one task per chunk (a chord header), so more workers finish sooner
  finish   gathers the chunks (refuses an incomplete set), stores scores and shares, and
           settles the TDA pool in the same transaction

A job is failed with a reason on any stage's error; partial scores are never stored as
complete. Every stage resumes from the run's saved files, so a retried task redoes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from attribution.models import TrainingAttribution
from attribution.tda import (
    AttributionRun,
    NormalisationError,
    TDAConfig,
    TDAError,
    fingerprint,
    fisher_file_name,
)
from attribution.tda.platform_model import PlatformTarget, platform_manifest
from config.exceptions import Conflict, DomainError, InvalidInput, NotFound
from generation.model import GeneratorError

log = logging.getLogger(__name__)

PROGRESS_WRITE_SECONDS = 0.5
# The exceptions that end a job with their message as the reason (anything else is a bug:
# the task's failure handler records it too, with its type).
JOB_ERRORS = (TDAError, DomainError, GeneratorError, OSError, ValueError)


def tda_config() -> TDAConfig:
    """The platform's TDA settings (seed 000 defaults with settings.TDA_CONFIG applied)."""
    try:
        return TDAConfig.from_dict(dict(settings.TDA_CONFIG))
    except TDAError as exc:
        raise InvalidInput(f"settings.TDA_CONFIG: {exc}") from exc


def training_attribution_request(
    *,
    generation_ref: str,
    requested_by_id: int,
    model_version_id: int,
    model_checkpoint_sha256: str,
) -> TrainingAttribution:
    """Create the job of a completed generation (inside its completing transaction) and
    queue it once that commits. Idempotent per generation."""
    from attribution import tasks

    defaults = {
        "generation_requested_by": requested_by_id,
        "model_version_id": model_version_id,
        "model_checkpoint_sha256": model_checkpoint_sha256,
    }
    try:
        defaults["config"] = tda_config().to_dict()
    except InvalidInput as exc:  # a settings mistake must not fail the generation itself
        defaults.update(
            config=dict(settings.TDA_CONFIG),
            status=TrainingAttribution.Status.FAILED,
            failure_reason=exc.message,
            finished_at=timezone.now(),
        )
    job, created = TrainingAttribution.objects.get_or_create(
        generation_ref=generation_ref, defaults=defaults
    )
    if created and job.status == TrainingAttribution.Status.QUEUED and settings.TDA_ON_GENERATION:
        transaction.on_commit(lambda: tasks.tda_prepare.delay(job.pk))
    return job


def training_attribution_retry(*, job: TrainingAttribution) -> TrainingAttribution:
    """Queue a failed job again with today's settings (its run files are started afresh)."""
    from attribution import tasks

    if job.status != TrainingAttribution.Status.FAILED:
        raise Conflict(f"only a failed job can be retried; this one is {job.status}")
    updated = TrainingAttribution.objects.filter(
        pk=job.pk, status=TrainingAttribution.Status.FAILED
    ).update(
        status=TrainingAttribution.Status.QUEUED,
        stage="",
        failure_reason="",
        progress_done=0,
        progress_total=0,
        chunks_done=0,
        chunks_total=0,
        config=tda_config().to_dict(),
    )
    if updated:
        _run_directory(job).joinpath("run.json").unlink(missing_ok=True)
        transaction.on_commit(lambda: tasks.tda_prepare.delay(job.pk))
    job.refresh_from_db()
    return job


# -- the run of a job ---------------------------------------------------------------------------


def _run_directory(job: TrainingAttribution) -> Path:
    return Path(settings.TDA_STATE_DIR) / "runs" / job.generation_ref


def tda_model_directory(checkpoint_sha256: str) -> Path:
    """A model version's shared TDA state (Fisher, theta0 loss cache), used by every job and
    by the studies (attribution/studies/)."""
    return Path(settings.TDA_STATE_DIR) / "models" / checkpoint_sha256[:16]


@lru_cache(maxsize=2)
def _manifest(model_version_id: int, checkpoint_sha256: str):
    from generation.services.attribution_inputs import model_version_training_items

    items = model_version_training_items(model_version_id=model_version_id)
    return platform_manifest(items)


def _attribution_run(job: TrainingAttribution, progress=None) -> AttributionRun:
    from generation.services.attribution_inputs import generated_sample, model_version_generator

    generator = model_version_generator(model_version_id=job.model_version_id)
    sample = generated_sample(generation_ref=job.generation_ref)
    target = PlatformTarget(generator.config)
    frames = generator.config.mel.frames_for(generator.config.dit.max_seconds)
    if sample.logmel.shape[-1] > frames:
        raise InvalidInput(
            f"the generated sample has {sample.logmel.shape[-1]} frames; the model's context "
            f"is {frames} ({generator.config.dit.max_seconds} s)"
        )
    manifest = _manifest(job.model_version_id, job.model_checkpoint_sha256)
    config = TDAConfig.from_dict(job.config)
    shared = tda_model_directory(job.model_checkpoint_sha256)
    return AttributionRun(
        _run_directory(job),
        target=target,
        model=generator.model,
        manifest=manifest,
        query=target.query_example(sample.logmel, target.spec_conditioning(sample.spec)),
        config=config,
        model_version=job.model_checkpoint_sha256,
        query_key=job.generation_ref,
        fisher_path=shared / fisher_file_name(job.model_checkpoint_sha256, manifest.digest, config),
        cache_dir=shared / "losses",
        progress=progress,
    )


def _stage_writer(job: TrainingAttribution) -> Callable[[str, int, int], None]:
    """Progress of the prepare stages (Fisher, unlearning), written at most twice a second."""
    last = [0.0]
    stages = {
        "fisher": TrainingAttribution.Stage.FISHER,
        "unlearn": TrainingAttribution.Stage.UNLEARN,
    }

    def on_progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage not in stages or (now - last[0] < PROGRESS_WRITE_SECONDS and done < total):
            return
        last[0] = now
        TrainingAttribution.objects.filter(pk=job.pk).update(
            stage=stages[stage], progress_done=done, progress_total=total
        )

    return on_progress


def _job(job_id: int) -> TrainingAttribution:
    try:
        return TrainingAttribution.objects.get(pk=job_id)
    except TrainingAttribution.DoesNotExist:
        raise NotFound(f"training attribution job {job_id} does not exist") from None


def training_attribution_fail(*, job_id: int, reason: str) -> None:
    """End a job that has not completed; a completed one keeps its scores."""
    TrainingAttribution.objects.filter(pk=job_id).exclude(
        status=TrainingAttribution.Status.DONE
    ).update(
        status=TrainingAttribution.Status.FAILED,
        failure_reason=reason[:2000],
        finished_at=timezone.now(),
    )
    log.warning("training attribution job %s failed: %s", job_id, reason)


def _failing(job: TrainingAttribution, exc: Exception) -> None:
    reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    training_attribution_fail(job_id=job.pk, reason=reason)


def training_attribution_prepare(
    *, job_id: int, chunk_items: int | None = None
) -> list[tuple[int, int]]:
    """Fisher and unlearning; the chunks to score next ([] when there is nothing to do)."""
    job = _job(job_id)
    if job.status in (TrainingAttribution.Status.DONE, TrainingAttribution.Status.FAILED):
        return []
    TrainingAttribution.objects.filter(pk=job.pk).update(
        status=TrainingAttribution.Status.RUNNING,
        started_at=job.started_at or timezone.now(),
        attempts=F("attempts") + 1,
    )
    try:
        run = _attribution_run(job, progress=_stage_writer(job))
        run.fisher()
        run.unlearned_model()
        chunks = run.chunks(chunk_items or settings.TDA_CHUNK_ITEMS)
    except JOB_ERRORS as exc:
        _failing(job, exc)
        return []
    scored = [(a, b) for a, b in chunks if run.has_chunk(a, b)]  # by an earlier attempt
    TrainingAttribution.objects.filter(pk=job.pk).update(
        stage=TrainingAttribution.Stage.SCORE,
        progress_done=sum(b - a for a, b in scored),
        progress_total=len(run.manifest),
        chunks_done=len(scored),
        chunks_total=len(chunks),
    )
    return chunks


def training_attribution_score_chunk(*, job_id: int, start: int, stop: int) -> None:
    """Score training items [start, stop) of a prepared job (saved; a retry loads it)."""
    job = _job(job_id)
    if job.status != TrainingAttribution.Status.RUNNING:
        return
    try:
        run = _attribution_run(job)
        already = run.has_chunk(start, stop)
        run.score(start, stop)
    except JOB_ERRORS as exc:
        _failing(job, exc)
        return
    if not already:
        TrainingAttribution.objects.filter(pk=job.pk).update(
            chunks_done=F("chunks_done") + 1, progress_done=F("progress_done") + (stop - start)
        )


def training_attribution_finish(*, job_id: int) -> TrainingAttribution:
    """Gather the scores; store them with their shares and settle the TDA pool, together."""
    from royalties.services import tda_pool_settle

    job = _job(job_id)
    if job.status != TrainingAttribution.Status.RUNNING:
        return job
    TrainingAttribution.objects.filter(pk=job.pk).update(stage=TrainingAttribution.Stage.SETTLE)
    try:
        result = _attribution_run(job).result()
        ids = [int(i) for i in result.ids]
        kind = settings.TDA_PAYOUT_SHARES
        if kind not in ("topk", "softmax"):
            raise InvalidInput(f"settings.TDA_PAYOUT_SHARES must be topk or softmax, not {kind}")
        softmax = result.shares("softmax")
        try:
            topk = result.shares("topk", k=settings.TDA_PAYOUT_TOP_K)
        except NormalisationError:  # no training item's loss rose: top-k is undefined
            topk = np.zeros(len(ids))
            kind = "softmax"  # still a split over every training recording, summing to 1
        payout = {
            rid: float(s) for rid, s in zip(ids, topk if kind == "topk" else softmax, strict=True)
        }
        payload = result.to_dict()
        with transaction.atomic():
            settlement = tda_pool_settle(
                generation_ref=job.generation_ref,
                shares={rid: share for rid, share in payout.items() if share > 0},
            )
            TrainingAttribution.objects.filter(pk=job.pk).update(
                status=TrainingAttribution.Status.DONE,
                scores={str(rid): float(s) for rid, s in zip(ids, result.scores, strict=True)},
                shares={
                    "softmax": {str(r): float(s) for r, s in zip(ids, softmax, strict=True)},
                    "topk": {str(r): float(s) for r, s in zip(ids, topk, strict=True)},
                },
                payout_share_kind=kind,
                result_sha256=fingerprint(payload),
                stats=payload["stages"],
                settlement_ref=settlement.key,
                progress_done=len(ids),
                progress_total=len(ids),
                finished_at=timezone.now(),
            )
    except JOB_ERRORS as exc:
        _failing(job, exc)
    job.refresh_from_db()
    log.info("training attribution of %s: %s", job.generation_ref, job.status)
    return job


def training_attribution_run_here(
    *, job_id: int, chunk_items: int | None = None
) -> TrainingAttribution:
    """All stages in this process, one chunk after another (the command line's path; the
    scores are the same bits as the chord's)."""
    job = _job(job_id)
    chunks = training_attribution_prepare(job_id=job.pk, chunk_items=chunk_items)
    for start, stop in chunks:
        training_attribution_score_chunk(job_id=job.pk, start=start, stop=stop)
    return training_attribution_finish(job_id=job.pk)
