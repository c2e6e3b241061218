"""python manage.py audit_robustness: seed 003 section 5.1 on the catalogue.

Random catalogue clips are pitch-shifted (+-1, 3, 6, 9, 12 semitones), time-stretched
(0.80-1.20), overlaid with white noise (-30 to +30 dB relative to the clip) and mashed up
(two catalogue clips; catalogue + outside audio; a reference + its generated output; 5/95 to
95/5), embedded with the audit's encoder and searched against every catalogue clip in pgvector.
Prints top-1/5/10 recall of the source recording per setting; saves robustness.csv,
robustness.png and summary.json under TDA_STATE_DIR/reports/audit_robustness-<time>/.
Defaults take a few minutes on 2 CPU cores with the default encoder.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from attribution.audit import AuditError
from attribution.studies.audit import RobustnessOptions, robustness_study
from config.exceptions import DomainError


class Command(BaseCommand):
    help = "Seed 003 robustness study: recall of the source recording under perturbations."

    def add_arguments(self, parser):
        parser.add_argument("--recordings", type=int, default=30, help="target clips (one each)")
        parser.add_argument("--held-out", type=int, default=10,
                            help="recordings left out of the search as outside audio")  # fmt: skip
        parser.add_argument("--outside-dir", default="", help="outside audio instead")
        parser.add_argument("--generations", type=int, default=20,
                            help="reference/output pairs for the third mash-up")  # fmt: skip
        parser.add_argument("--encoder", help="name@version (default: AUDIT_ENCODER or active)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--quick", action="store_true", help="fewer settings per kind")

    def handle(self, *args, **o):
        try:
            options = RobustnessOptions(
                recordings=o["recordings"], held_out=o["held_out"], outside_dir=o["outside_dir"],
                generations=o["generations"], encoder=o["encoder"], seed=o["seed"],
                quick=o["quick"],
            )  # fmt: skip
            report = robustness_study(options=options, out=self.stdout.write)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        except AuditError as exc:
            raise CommandError(str(exc)) from exc
        ks = [key for key in report.rows[0] if key.startswith("top")] if report.rows else []
        self.stdout.write("")
        self.stdout.write(f"{'perturbation':<18} {'setting':>9} {'n':>4} "
                          + " ".join(f"{k:>6}" for k in ks))  # fmt: skip
        for row in report.rows:
            self.stdout.write(
                f"{row['kind']:<18} {row['setting']:>9} {row['n']:>4} "
                + " ".join(f"{row[k]:>6.2f}" for k in ks)
            )
        self.stdout.write(f"report: {report.directory} ({report.summary['seconds']:.0f} s)")
