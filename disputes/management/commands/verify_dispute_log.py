"""python manage.py verify_dispute_log: check the hash chain of dispute events; names the
first broken event and exits 1 when it was tampered with."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from disputes.selectors import dispute_chain_verify


class Command(BaseCommand):
    help = "Verify the dispute events' hash chain; exit 1 if it was tampered with."

    def handle(self, *args, **options):
        report = dispute_chain_verify()
        if not report.ok:
            raise CommandError(
                f"dispute chain BROKEN at event {report.first_broken_sequence}: {report.reason}; "
                f"{report.checked:,} events before it are intact"
            )
        self.stdout.write(
            f"dispute chain intact: {report.checked:,} events, head {report.head_sequence} "
            f"{report.head_hash}"
        )
