"""python manage.py attribute_generation GENERATION_ID: training-time attribution of one
generation in this process (what the `attribution` workers do as a chord), with the top
contributors.

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
        evidence = job.evidence or {}
        regime = evidence.get("regime", {})
        rule = job.rule or {}
        self.stdout.write(
            f"{len(job.scores)} training recordings scored over "
            f"{evidence.get('windows_total', '?')} windows ({evidence.get('method', '?')}); "
            + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in timings.items())
        )
        if regime:
            self.stdout.write(
                f"regime: own-loss rise {regime['own_loss_rise']:.3g}, exact vs first order "
                f"Pearson {regime['pearson']:.4f} on {len(regime['probe'])} windows"
            )
        ranked = sorted(job.scores, key=lambda r: -job.scores[r])[:top]
        labels = recordings_labels(recording_ids=[int(r) for r in ranked])
        errors = evidence.get("standard_errors", {})
        self.stdout.write(f"{'rank':>4}  {'score':>12}  {'SE':>10}  {'paid':>6}  recording")
        for rank, rid in enumerate(ranked, 1):
            title, artist = labels.get(int(rid), ("(removed)", ""))
            se = errors.get(rid)
            self.stdout.write(
                f"{rank:>4}  {job.scores[rid]:>12.5g}  "
                + (f"{se:>10.3g}" if se is not None else f"{'-':>10}")
                + f"  {job.shares['topk'][rid]:>6.3f}  {rid}: {title} ({artist})"
            )
        if job.payout_share_kind == "unattributed":
            self.stdout.write(
                f"no score cleared {rule.get('min_z', '?')} standard errors: the TDA pool "
                "stays pending as unattributed"
            )
        else:
            self.stdout.write(
                f"TDA pool settled ({job.payout_share_kind}) in {job.settlement_ref}: "
                f"{len(evidence.get('cleared', []))} recordings cleared "
                f"{rule.get('min_z', '?')} SE, the top {rule.get('top_k', '?')} by the "
                f"window {rule.get('aggregate', '?')} share the pool"
            )
