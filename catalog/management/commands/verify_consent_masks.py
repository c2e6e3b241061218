"""python manage.py verify_consent_masks [--repair]: check that every embedding row's consent
mask (what vector search filters by) matches its recording's consent."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from catalog.services.consent_masks import consent_masks_refresh, consent_masks_stale


class Command(BaseCommand):
    help = "Compare the search's consent masks with the consent tables; --repair rewrites them."

    def add_arguments(self, parser):
        parser.add_argument("--repair", action="store_true", help="recompute stale masks")

    def handle(self, *args, **options):
        stale = consent_masks_stale()
        if not stale:
            self.stdout.write("consent masks: every embedding row matches its recording's consent")
            return
        listed = ", ".join(map(str, stale[:20])) + (" ..." if len(stale) > 20 else "")
        if not options["repair"]:
            raise CommandError(
                f"{len(stale)} recordings have stale consent masks ({listed}); "
                "run with --repair to recompute them"
            )
        with transaction.atomic():
            rows = consent_masks_refresh(recording_ids=stale)
        self.stdout.write(f"repaired {rows} embedding rows of {len(stale)} recordings ({listed})")
