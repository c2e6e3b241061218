"""Training-time attribution jobs: every completed generation is attributed to the recordings
its model version was trained on (seed 000: unlearn the generated sample, score every training
item by its loss increase), then the TDA pool of its fee is settled by the normalised shares.

Stages, each a Celery task on the `attribution` queue (see attribution/tasks.py):
  prepare  Fisher of the model version (computed once, shared); with the first-order method
           the index of training-window gradients (once, shared) and the query's scores; the
           unlearning update and the regime check; returns the manifest's chunks
  score    one task per chunk (a chord header), so more workers finish sooner
  finish   gathers the chunks (refuses an incomplete set), aggregates the windows of every
           recording, stores scores, standard errors and shares, and settles the TDA pool by
           the recordings whose score clears its noise, in the same transaction (or leaves
           the pool pending as unattributed when none does; settings.TDA_UNATTRIBUTED)

A job is failed with a reason on any stage's error; partial scores are never stored as
complete. Every stage resumes from the run's saved files, so a retried task redoes nothing.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from datetime import timedelta
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
    softmax_shares,
)
from attribution.tda.normalise import clears_noise, eligible_topk_shares
from attribution.tda.platform_model import PlatformTarget, platform_manifest
from config.exceptions import Conflict, DomainError, InvalidInput, NotFound
from generation.model import GeneratorError
from jobs.lifecycle import JobKind, heartbeat, heartbeat_writer, job_claim

log = logging.getLogger(__name__)

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
        defaults["rule"] = _payout_rule()
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
        # robust: a broker that is down leaves the job queued for the sweeper (or
        # `attribute_generation`) instead of raising after the generation committed
        transaction.on_commit(lambda: tasks.tda_prepare.delay(job.pk), robust=True)
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
        attempts=0,  # a new run: the lifecycle counts its tries afresh
        heartbeat_at=timezone.now(),  # queued now (the sweeper's clock)
        config=tda_config().to_dict(),
        rule=_payout_rule(),
    )
    if updated:
        shutil.rmtree(_run_directory(job), ignore_errors=True)  # started afresh
        transaction.on_commit(lambda: tasks.tda_prepare.delay(job.pk), robust=True)
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
def _manifest(model_version_id: int, checkpoint_sha256: str, coverage: str):
    from generation.services.attribution_inputs import (
        model_version_generator,
        model_version_training_items,
    )

    items = model_version_training_items(model_version_id=model_version_id)
    config = model_version_generator(model_version_id=model_version_id).config
    try:
        return platform_manifest(items, config, coverage=coverage)
    except TDAError as exc:
        raise InvalidInput(f"settings.TDA_COVERAGE: {exc}") from exc


def _attribution_run(job: TrainingAttribution, progress=None) -> AttributionRun:
    from generation.services.attribution_inputs import generated_sample, model_version_generator

    generator = model_version_generator(model_version_id=job.model_version_id)
    sample = generated_sample(generation_ref=job.generation_ref)
    target = PlatformTarget(generator.config)
    config = TDAConfig.from_dict(job.config)
    manifest = _manifest(job.model_version_id, job.model_checkpoint_sha256, _coverage(job))
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


def _coverage(job: TrainingAttribution) -> str:
    return job.rule.get("coverage") or settings.TDA_COVERAGE


def _payout_rule() -> dict:
    """The settings a job is paid by (recorded on the job when it is created)."""
    rule = {
        "shares": settings.TDA_PAYOUT_SHARES,
        "top_k": settings.TDA_PAYOUT_TOP_K,
        "min_z": settings.TDA_PAYOUT_MIN_Z,
        "aggregate": settings.TDA_PAYOUT_AGGREGATE,
        "unattributed": settings.TDA_UNATTRIBUTED,
        "coverage": settings.TDA_COVERAGE,
    }
    problems = []
    if rule["shares"] != "topk":
        problems.append("TDA_PAYOUT_SHARES must be topk (a softmax would pay every recording)")
    if rule["aggregate"] not in ("mean", "max"):
        problems.append("TDA_PAYOUT_AGGREGATE must be mean or max")
    if rule["unattributed"] not in ("pending", "flat"):
        problems.append("TDA_UNATTRIBUTED must be pending or flat")
    if rule["coverage"] not in ("whole", "first"):
        problems.append("TDA_COVERAGE must be whole or first")
    if not (isinstance(rule["top_k"], int) and rule["top_k"] >= 1):
        problems.append("TDA_PAYOUT_TOP_K must be an integer >= 1")
    if not (np.isfinite(rule["min_z"]) and rule["min_z"] >= 0):
        problems.append("TDA_PAYOUT_MIN_Z must be a finite number >= 0")
    if problems:
        raise InvalidInput("settings: " + "; ".join(problems))
    return rule


def _stage_writer(job: TrainingAttribution) -> Callable[[str, int, int], None]:
    """Progress of the prepare stages (Fisher, unlearning), written at most twice a second."""
    write = heartbeat_writer(TRAINING_ATTRIBUTION_JOB, job.pk)
    stages = {
        "fisher": TrainingAttribution.Stage.FISHER,
        "fast_index": TrainingAttribution.Stage.INDEX,
        "unlearn": TrainingAttribution.Stage.UNLEARN,
    }

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage in stages:
            write(final=done >= total, stage=stages[stage], progress_done=done,
                  progress_total=total)  # fmt: skip

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


def _queue_prepare(job_id: int) -> None:
    from attribution import tasks

    tasks.tda_prepare.delay(job_id)


TRAINING_ATTRIBUTION_JOB = JobKind(
    name="training attribution",
    model=TrainingAttribution,
    queued=TrainingAttribution.Status.QUEUED,
    running=TrainingAttribution.Status.RUNNING,
    finished=(TrainingAttribution.Status.DONE, TrainingAttribution.Status.FAILED),
    requeue=_queue_prepare,  # a requeued job resumes: Fisher, index and scored chunks are kept
    fail=lambda pk, reason: training_attribution_fail(job_id=pk, reason=reason),
    # Fisher, index and unlearning write progress twice a second; chunks at start and end
    stale_after=timedelta(minutes=10),
)


def _failing(job: TrainingAttribution, exc: Exception) -> None:
    reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    training_attribution_fail(job_id=job.pk, reason=reason)


def training_attribution_prepare(
    *, job_id: int, chunk_items: int | None = None
) -> list[tuple[int, int]]:
    """Fisher and unlearning; the chunks to score next ([] when there is nothing to do)."""
    _job(job_id)  # a clear error for an unknown id
    job = job_claim(TRAINING_ATTRIBUTION_JOB, job_id)  # JobBusy while another prepares it
    if job is None:  # done or failed
        return []
    try:
        run = _attribution_run(job, progress=_stage_writer(job))
        run.fisher()
        if run.config.method == "first_order":  # the scores are one product: one chunk
            run.first_order()
        run.unlearned_model()
        if run.config.regime_probe_items:
            run.regime()
        size = len(run.manifest) if run.config.method == "first_order" else None
        chunks = run.chunks(size or chunk_items or settings.TDA_CHUNK_ITEMS)
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
    heartbeat(TRAINING_ATTRIBUTION_JOB, job.pk)
    try:
        run = _attribution_run(job)
        already = run.has_chunk(start, stop)
        run.score(start, stop)
    except JOB_ERRORS as exc:
        _failing(job, exc)
        return
    if not already:
        heartbeat(TRAINING_ATTRIBUTION_JOB, job.pk, chunks_done=F("chunks_done") + 1,
                  progress_done=F("progress_done") + (stop - start))  # fmt: skip


def training_attribution_finish(*, job_id: int) -> TrainingAttribution:
    """Gather the scores; store them with their shares and settle the TDA pool, together."""
    from royalties.services import tda_pool_settle

    job = _job(job_id)
    if job.status != TrainingAttribution.Status.RUNNING:
        return job
    heartbeat(TRAINING_ATTRIBUTION_JOB, job.pk, stage=TrainingAttribution.Stage.SETTLE)
    try:
        rule = job.rule or _payout_rule()
        result = _attribution_run(job).result()
        recordings = result.recordings()
        ids = [int(i) for i in recordings.ids]
        scores, errors = recordings.score(rule["aggregate"])
        if not (np.all(np.isfinite(scores)) and np.all(np.isfinite(errors))):
            raise InvalidInput("attribution scores or standard errors are not finite")
        try:
            paid = eligible_topk_shares(scores, errors, rule["top_k"], rule["min_z"])
            kind = "topk"
        except NormalisationError:  # nothing clears its noise: the documented fallback
            kind = "flat" if rule["unattributed"] == "flat" else "unattributed"
            paid = np.full(len(ids), 1.0 / len(ids)) if kind == "flat" else np.zeros(len(ids))
        payload = result.to_dict()

        def by_id(values, keep=lambda value: True) -> dict:
            return {str(r): float(v) for r, v in zip(ids, values, strict=True) if keep(v)}

        cleared = clears_noise(scores, errors, rule["min_z"])
        evidence = {
            "rule": rule,
            "standard_errors": by_id(errors),
            "mean": by_id(recordings.mean),
            "mean_se": by_id(recordings.mean_se),
            "max": by_id(recordings.max),
            "max_se": by_id(recordings.max_se),
            "windows": {str(r): n for r, n in zip(ids, recordings.windows, strict=True)},
            "cleared": [r for r, ok in zip(ids, cleared, strict=True) if ok],
            "regime": result.regime,
            "method": result.provenance["config"]["method"],
            "windows_total": len(result.ids),
        }
        with transaction.atomic():
            settlement = None
            if kind != "unattributed":
                settlement = tda_pool_settle(
                    generation_ref=job.generation_ref,
                    shares={rid: float(s) for rid, s in zip(ids, paid, strict=True) if s > 0},
                )
            TrainingAttribution.objects.filter(pk=job.pk).update(
                status=TrainingAttribution.Status.DONE,
                scores=by_id(scores),
                shares={
                    "payout": by_id(paid, keep=lambda share: share > 0),
                    "softmax": by_id(softmax_shares(scores)),
                    "topk": by_id(paid),
                },
                payout_share_kind=kind,
                evidence=evidence,
                result_sha256=fingerprint(payload),
                stats=payload["stages"],
                settlement_ref=settlement.key if settlement else "",
                progress_done=len(result.ids),
                progress_total=len(result.ids),
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
