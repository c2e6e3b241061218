"""`manage.py sweep_jobs [--every SECONDS]`: requeue or fail jobs whose worker was lost."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from jobs.sweeping import jobs_sweep


class Command(BaseCommand):
    help = "Requeue jobs whose worker was lost or whose message was lost; fail those out of tries."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--every", type=float, default=0.0,
                            help="sweep again every SECONDS until stopped (0: once)")  # fmt: skip

    def handle(self, *args, every: float, **options) -> None:
        if every < 0:
            raise CommandError("--every must be 0 (once) or a positive number of seconds")
        while True:
            for name, outcome in jobs_sweep().items():
                if outcome.requeued or outcome.failed:
                    self.stdout.write(
                        f"{name}: requeued {outcome.requeued}, failed {outcome.failed}"
                    )
            if not every:
                return
            time.sleep(every)
