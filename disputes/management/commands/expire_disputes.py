"""python manage.py expire_disputes: close open disputes past their deadline
(DISPUTE_AUTO_RELEASE_DAYS after opening) as expired and release what only they held.
Celery beat runs the same hourly; this is for a cron or by hand."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from disputes.services import disputes_expire


class Command(BaseCommand):
    help = "Expire open disputes past their deadline, releasing their holds."

    def handle(self, *args, **options):
        expired = disputes_expire()
        for dispute in expired:
            self.stdout.write(
                f"dispute {dispute.pk} expired (deadline {dispute.deadline:%Y-%m-%d})"
            )
        self.stdout.write(f"{len(expired)} dispute{'s' if len(expired) != 1 else ''} expired")
