"""Celery tasks of attribution: take ids, call one service, under the shared job lifecycle
(jobs/lifecycle.py). Training-time attribution runs on the `attribution` queue (a worker
without CUDA serves it on CPU): `tda_prepare` fans the scoring out as a chord over chunks of
the training manifest, so more workers finish a query sooner. The similarity audit runs on
the `audit` queue."""

from celery import chord, shared_task

from jobs.lifecycle import JOB_TASK_OPTIONS, job_task_run


def _training_job():
    from attribution.services.training import TRAINING_ATTRIBUTION_JOB

    return TRAINING_ATTRIBUTION_JOB


@shared_task(**JOB_TASK_OPTIONS)
def tda_prepare(self, job_id: int) -> dict:
    from attribution.services.training import training_attribution_prepare

    chunks = job_task_run(
        self, _training_job(), job_id, lambda: training_attribution_prepare(job_id=job_id)
    )
    if chunks:
        chord(tda_score_chunk.si(job_id, start, stop) for start, stop in chunks)(
            tda_finish.si(job_id)
        )
    return {"job": job_id, "chunks": len(chunks)}


@shared_task(**JOB_TASK_OPTIONS)
def tda_score_chunk(self, job_id: int, start: int, stop: int) -> dict:
    from attribution.services.training import training_attribution_score_chunk

    job_task_run(
        self,
        _training_job(),
        job_id,
        lambda: training_attribution_score_chunk(job_id=job_id, start=start, stop=stop),
    )
    return {"job": job_id, "start": start, "stop": stop}


@shared_task(**JOB_TASK_OPTIONS)
def tda_finish(self, job_id: int) -> dict:
    from attribution.services.training import training_attribution_finish

    job = job_task_run(
        self, _training_job(), job_id, lambda: training_attribution_finish(job_id=job_id)
    )
    return {"job": job_id, "status": job.status}


@shared_task(**JOB_TASK_OPTIONS)
def similarity_audit_run(self, audit_id: int) -> dict:
    """Seed 003 audit of one completed generation; a bug ends the audit, never the
    generation."""
    from attribution.services.audit import SIMILARITY_AUDIT_JOB
    from attribution.services.audit import similarity_audit_run as run

    audit = job_task_run(self, SIMILARITY_AUDIT_JOB, audit_id, lambda: run(audit_id=audit_id))
    return {"audit": audit_id, "status": audit.status, "flagged": audit.flagged}


@shared_task(**JOB_TASK_OPTIONS)
def model_unlearning_run(self, job_id: int) -> dict:
    """Remove revoked recordings from the served generator (one job; see the service)."""
    from attribution.services.unlearning import UNLEARNING_JOB
    from attribution.services.unlearning import model_unlearning_run as run

    job = job_task_run(self, UNLEARNING_JOB, job_id, lambda: run(job_id=job_id))
    return {"job": job_id, "status": job.status, "reason": job.failure_reason}
