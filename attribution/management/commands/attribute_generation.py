"""python manage.py attribute_generation GENERATION_ID: training-time attribution of one
generation in this process (what the `gpu` workers do as a chord), with the top contributors.

For operators: run a job that is queued while TDA_ON_GENERATION is off, or `--retry` one that
failed (with today's settings). Prints the stages' timings and the ranking.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from attribution.models import TrainingAttribution
from attribution.services.training import (
    training_attribution_retry,
    training_attribution_run_here,
)
from catalog.selectors import recordings_labels


class Command(BaseCommand):
    help = "Compute (or show) the training-time attribution of a generation."

    def add_arguments(self, parser):
        parser.add_argument("generation", help="public id (uuid) of a succeeded generation")
        parser.add_argument("--chunk-items", type=int, help="items per scoring chunk")
        parser.add_argument("--retry", action="store_true", help="run a failed job again")
        parser.add_argument("--top", type=int, default=10, help="contributors to print")

    def handle(self, *args, generation: str, chunk_items, retry: bool, top: int, **options):
        job = TrainingAttribution.objects.filter(generation_ref=generation).first()
        if job is None:
            raise CommandError(f"no training attribution job for generation {generation}")
        if retry:
            job = training_attribution_retry(job=job)
        if job.status == TrainingAttribution.Status.FAILED:
            raise CommandError(f"the job failed: {job.failure_reason} (use --retry)")
        if job.status != TrainingAttribution.Status.DONE:
            job = training_attribution_run_here(job_id=job.pk, chunk_items=chunk_items)
        if job.status != TrainingAttribution.Status.DONE:
            raise CommandError(f"the job failed: {job.failure_reason}")
        timings = job.stats.get("timings", {})
        self.stdout.write(
            f"{len(job.scores)} training recordings scored; "
            + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in timings.items())
        )
        ranked = sorted(job.scores, key=lambda r: -job.scores[r])[:top]
        labels = recordings_labels(recording_ids=[int(r) for r in ranked])
        self.stdout.write(f"{'rank':>4}  {'score':>12}  {'softmax':>7}  {'top-k':>6}  recording")
        for rank, rid in enumerate(ranked, 1):
            title, artist = labels.get(int(rid), ("(removed)", ""))
            self.stdout.write(
                f"{rank:>4}  {job.scores[rid]:>12.5g}  {job.shares['softmax'][rid]:>7.3f}  "
                f"{job.shares['topk'][rid]:>6.3f}  {rid}: {title} ({artist})"
            )
        self.stdout.write(f"TDA pool settled in {job.settlement_ref}")
