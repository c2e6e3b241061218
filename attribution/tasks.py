"""Celery tasks of training-time attribution (queue `gpu`; a worker without CUDA serves it on
CPU): take ids, call one service. `tda_prepare` fans the scoring out as a chord over chunks of
the training manifest, so more workers finish a query sooner."""

from celery import Task, chord, shared_task
from django.db import InterfaceError, OperationalError

RETRYING = {
    "acks_late": True,
    "reject_on_worker_lost": True,  # a lost worker's chunk is delivered again
    "autoretry_for": (OperationalError, InterfaceError),  # the database went away: transient
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 3,
}


class TrainingAttributionTask(Task):
    """Records an unexpected error as the job's failure reason (the chord then never finishes,
    and the job must not look as if it still runs)."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        from attribution.services.training import training_attribution_fail

        job_id = kwargs.get("job_id", args[0] if args else None)
        if job_id is not None:
            training_attribution_fail(job_id=job_id, reason=f"{type(exc).__name__}: {exc}")


@shared_task(base=TrainingAttributionTask, **RETRYING)
def tda_prepare(job_id: int) -> dict:
    from attribution.services.training import training_attribution_prepare

    chunks = training_attribution_prepare(job_id=job_id)
    if chunks:
        chord(tda_score_chunk.si(job_id, start, stop) for start, stop in chunks)(
            tda_finish.si(job_id)
        )
    return {"job": job_id, "chunks": len(chunks)}


@shared_task(base=TrainingAttributionTask, **RETRYING)
def tda_score_chunk(job_id: int, start: int, stop: int) -> dict:
    from attribution.services.training import training_attribution_score_chunk

    training_attribution_score_chunk(job_id=job_id, start=start, stop=stop)
    return {"job": job_id, "start": start, "stop": stop}


@shared_task(base=TrainingAttributionTask, **RETRYING)
def tda_finish(job_id: int) -> dict:
    from attribution.services.training import training_attribution_finish

    job = training_attribution_finish(job_id=job_id)
    return {"job": job_id, "status": job.status}


@shared_task(**RETRYING)
def similarity_audit_run(audit_id: int) -> dict:
    """Seed 003 audit of one completed generation (routed to the `cpu` queue in settings)."""
    from attribution.services.audit import similarity_audit_fail
    from attribution.services.audit import similarity_audit_run as run

    try:
        audit = run(audit_id=audit_id)
    except (OperationalError, InterfaceError):
        raise  # transient: retried
    except Exception as exc:  # a bug must still end the audit, never the generation
        similarity_audit_fail(audit_id=audit_id, reason=f"{type(exc).__name__}: {exc}")
        raise
    return {"audit": audit_id, "status": audit.status, "flagged": audit.flagged}
