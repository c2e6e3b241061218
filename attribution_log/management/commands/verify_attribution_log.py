"""python manage.py verify_attribution_log: check the attribution log's hash chain.

Prints how many records were checked and the head (sequence and hash) when the chain is
intact; keep the head hash somewhere else and pass it back with `--anchor SEQUENCE:HASH`
later, which also catches records deleted from the end of the log or a rewritten chain.
When the chain is broken, names the first broken record and exits with status 1.
"""

from __future__ import annotations

import re

from django.core.management.base import BaseCommand, CommandError

from attribution_log.models import AttributionRecord
from attribution_log.selectors import attribution_chain_verify

ANCHOR = re.compile(r"^(\d+):([0-9a-f]{64})$")


class Command(BaseCommand):
    help = "Verify the inference-time attribution log (hash chain); exit 1 if it was tampered with."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument(
            "--anchor",
            help="SEQUENCE:HASH of a head printed earlier; fail unless that record still has it",
        )
        parser.add_argument("--quiet", action="store_true", help="no progress lines")

    def handle(self, *args, batch_size: int, anchor: str | None, quiet: bool, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        expected = ANCHOR.match(anchor or "") if anchor else None
        if anchor and not expected:
            raise CommandError(f"--anchor must be SEQUENCE:HASH (64 hex digits), got '{anchor}'")
        total = AttributionRecord.objects.count()
        self.stdout.write(f"Verifying the attribution log ({total:,} records)...")

        def progress(checked: int) -> None:
            if not quiet and total > batch_size:
                self.stdout.write(f"  {checked:,} / {total:,} records checked")

        report = attribution_chain_verify(batch_size=batch_size, on_progress=progress)
        if not report.ok:
            record = AttributionRecord.objects.get(sequence=report.first_broken_sequence)
            raise CommandError(
                f"attribution log BROKEN at record {record.sequence} (kind {record.kind}, "
                f"generation_ref '{record.generation_ref}'): {report.reason}; "
                f"{report.checked:,} records before it are intact"
            )
        if expected:
            sequence, digest = int(expected[1]), expected[2]
            kept = (
                AttributionRecord.objects.filter(sequence=sequence)
                .values_list("record_hash", flat=True)
                .first()
            )
            if kept != digest:
                found = "is missing" if kept is None else f"now has hash {kept}"
                raise CommandError(
                    f"attribution log does not match the anchor: record {sequence} {found}, "
                    f"expected {digest}"
                )
            self.stdout.write(f"Anchor record {sequence} matches.")
        head = "none (empty log)" if report.head_sequence is None else f"#{report.head_sequence}"
        self.stdout.write(
            self.style.SUCCESS(
                f"Attribution log intact: {report.checked:,} records checked; "
                f"head {head} {report.head_hash}"
            )
        )
