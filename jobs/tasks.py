"""The periodic sweep (Celery beat, queue `generation`: it is quick, and that worker is never
held for minutes)."""

from celery import shared_task


@shared_task
def jobs_sweep() -> dict:
    from jobs.sweeping import jobs_sweep as sweep

    return {name: vars(outcome) for name, outcome in sweep().items()}
