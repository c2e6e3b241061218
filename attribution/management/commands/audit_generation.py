"""python manage.py audit_generation GENERATION_ID: the similarity audit of one generation in
this process (what the `audit` workers do), printing its top matches and whether it is flagged.

For operators: audit a generation made while AUDIT_ON_GENERATION was off (or before the audit
existed), rerun one with `--again` (today's settings and calibration), or `--release` the
payouts a flag held, after review.
"""

from __future__ import annotations

from dataclasses import asdict

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from attribution.models import SimilarityAudit
from attribution.selectors import similarity_audit_for_generation
from attribution.services.audit import similarity_audit_release, similarity_audit_run_here
from config.exceptions import DomainError


def _match_row(m: dict) -> str:
    """One match as a table row (either signal's: the same fields)."""
    marks = ("R" if m["is_reference"] else "-") + ("T" if m["in_training_set"] else "-")
    marks += "!" if m["flagged"] else " "
    return (
        f"{m['rank']:>4}  {m['similarity']:>6.3f}  {m['output_start_seconds']:>6.1f}  "
        f"{m['recording_start_seconds']:>6.1f}  {marks:<5}  {m['recording_id']}"
    )


class Command(BaseCommand):
    help = "Run (or show) the similarity audit of a generation."

    def add_arguments(self, parser):
        parser.add_argument(
            "generation", nargs="?", help="public id (uuid) of a succeeded generation"
        )
        parser.add_argument(
            "--all", action="store_true", help="every succeeded generation without a done audit"
        )
        parser.add_argument("--again", action="store_true", help="rerun a finished/failed audit")
        parser.add_argument("--release", metavar="REASON", help="release held payouts")
        parser.add_argument("--staff", default="", help="staff username for --release")

    def handle(self, *args, generation, again: bool, release, staff: str, all: bool, **_):
        if all:
            return self._all(again=again)
        if not generation:
            raise CommandError("give a generation id, or --all")
        try:
            if release is not None:
                actor = get_user_model().objects.filter(username=staff, is_staff=True).first()
                if actor is None:
                    raise CommandError("--release needs --staff USERNAME of a staff user")
                similarity_audit_release(actor=actor, generation_ref=generation, reason=release)
                self.stdout.write(f"payouts of {generation} released")
                return
            audit = similarity_audit_run_here(generation_ref=generation, again=again)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        if audit.status == SimilarityAudit.Status.FAILED:
            raise CommandError(f"the audit failed: {audit.failure_reason}")
        result = similarity_audit_for_generation(generation_ref=generation)
        self.stdout.write(
            f"audit of {generation}: {result.output_clip_count} clips of "
            f"{result.clip_seconds:g} s (hop {result.hop_seconds:g} s), encoder {result.encoder}, "
            f"threshold {result.threshold_name} = {result.threshold_value:.4f}"
        )
        self.stdout.write(f"{'rank':>4}  {'sim':>6}  {'out@s':>6}  {'rec@s':>6}  flags  recording")
        for m in result.matches:
            self.stdout.write(_match_row(asdict(m)) + f": {m.title}")
        for rid, score in result.reference_scores.items():
            self.stdout.write(f"reference {rid}: best clip pair {score['similarity']:.3f}")
        melody = result.melody
        if melody.get("error"):
            self.stdout.write(
                f"melody signal ({melody['encoder']}) not available: {melody['error']}"
            )
        elif melody:
            self.stdout.write(
                f"melody signal {melody['encoder']}, threshold {melody['threshold_name']} = "
                f"{melody['threshold_value']:.4f}"
            )
            for m in melody["matches"]:
                self.stdout.write(_match_row(m))
            for rid, score in melody["reference_scores"].items():
                roles = f" ({', '.join(score['roles'])})" if score["roles"] else ""
                self.stdout.write(f"reference {rid}{roles}: melody {score['similarity']:.3f}")
        verdict = "FLAGGED" if result.flagged else "not flagged"
        held = " (payouts held for review)" if result.payouts_held else ""
        self.stdout.write(f"{verdict}{held}  [R reference, T training set, ! flagged]")

    def _all(self, *, again: bool) -> None:
        from generation.services.attribution_inputs import succeeded_generation_refs

        refs = succeeded_generation_refs(limit=100_000)
        done = set(
            SimilarityAudit.objects.filter(status=SimilarityAudit.Status.DONE).values_list(
                "generation_ref", flat=True
            )
        )
        todo = refs if again else [ref for ref in refs if ref not in done]
        counts = {"done": 0, "flagged": 0, "failed": 0}
        for n, ref in enumerate(todo, 1):
            try:
                audit = similarity_audit_run_here(generation_ref=ref, again=again)
            except DomainError as exc:
                counts["failed"] += 1
                self.stdout.write(f"[{n}/{len(todo)}] {ref}: {exc.message}")
                continue
            outcome = audit.status + (", flagged" if audit.flagged else "")
            if audit.status == SimilarityAudit.Status.FAILED:
                counts["failed"] += 1
                outcome += f": {audit.failure_reason}"
            else:
                counts["done"] += 1
                counts["flagged"] += audit.flagged
            self.stdout.write(f"[{n}/{len(todo)}] {ref}: {outcome}")
        self.stdout.write(
            f"{len(todo)} audited: {counts['done']} done ({counts['flagged']} flagged), "
            f"{counts['failed']} failed; {len(refs) - len(todo)} already done"
        )
