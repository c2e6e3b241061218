"""Celery task of disputes: beat runs it hourly (`expire-disputes` in settings)."""

from celery import shared_task


@shared_task
def disputes_expire() -> dict:
    """Close the open disputes past their deadline and release what only they held."""
    from disputes.services import disputes_expire as expire

    return {"expired": [dispute.pk for dispute in expire()]}
