"""Celery tasks of generation: take ids, re-fetch, call one service (queue `generation`)."""

from celery import shared_task

from jobs.lifecycle import JOB_TASK_OPTIONS, job_task_run


@shared_task(**JOB_TASK_OPTIONS)
def generation_run(self, generation_id: int) -> dict:
    """Generate one verified request; idempotent (a finished generation is left as it is)."""
    from generation.services.running import GENERATION_JOB
    from generation.services.running import generation_run as run

    generation = job_task_run(
        self, GENERATION_JOB, generation_id, lambda: run(generation_id=generation_id)
    )
    return {"generation": generation.ref, "status": generation.status}
