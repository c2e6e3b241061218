"""Celery tasks of generation: take ids, re-fetch, call one service (queue `gpu`)."""

from celery import shared_task
from django.db import InterfaceError, OperationalError


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,  # a lost worker's job is delivered again, and re-run
    autoretry_for=(OperationalError, InterfaceError),  # the database went away: transient
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=3,
)
def generation_run(generation_id: int) -> dict:
    """Generate one verified request; idempotent (a finished generation is left as it is)."""
    from generation.services.running import generation_run as run

    generation = run(generation_id=generation_id)
    return {"generation": generation.ref, "status": generation.status}
