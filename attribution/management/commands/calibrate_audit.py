"""python manage.py calibrate_audit [--encoder NAME@VERSION]: the similarity thresholds of an
encoder version's clip space (seed 003 section 4.1), stored for the audit, with a histogram.

Random catalogue clips are ranked against all other recordings' clips; a Gaussian fitted to
the top neighbours' similarities gives the mean, +1 sigma and +2 sigma thresholds, and random
clip pairs give the "random" bin. Prints the thresholds; saves calibration.png and
summary.json under TDA_STATE_DIR/reports/audit_calibration-<time>/.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from attribution.audit import AuditError, CalibrationConfig
from attribution.audit.calibration import FITS
from attribution.audit.plots import plot_calibration
from attribution.management.commands.embed_clips import clip_spec_option
from attribution.services.audit import audit_encoder_version, clip_calibrate
from attribution.studies.reports import report_directory, write_json
from config.exceptions import DomainError


class Command(BaseCommand):
    help = "Fit and store the similarity audit's thresholds for an encoder version."

    def add_arguments(self, parser):
        parser.add_argument("--encoder", help="name@version (default: AUDIT_ENCODER or active)")
        parser.add_argument("--clip-seconds", type=float)
        parser.add_argument("--hop-seconds", type=float)
        parser.add_argument("--sample-clips", type=int, default=1000, help="seed 003: 1000")
        parser.add_argument("--top-fraction", type=float, default=0.002, help="10k of 5M")
        parser.add_argument("--min-top", type=int, default=10)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--fit",
            choices=FITS,
            default="fisher_z",
            help="Gaussian on atanh(similarity) (default) or on the similarities (the paper)",
        )

    def handle(self, *args, **options):
        spec = clip_spec_option(options["clip_seconds"], options["hop_seconds"])
        started = time.monotonic()
        try:
            config = CalibrationConfig(
                sample_clips=options["sample_clips"],
                top_fraction=options["top_fraction"],
                min_top=options["min_top"],
                seed=options["seed"],
                fit=options["fit"],
            )
            encoder_version = audit_encoder_version(options["encoder"])
            calibration = clip_calibrate(encoder_version=encoder_version, spec=spec, config=config)
        except AuditError as exc:
            raise CommandError(str(exc)) from exc
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        missing = calibration.config.get("recordings_without_clips", 0)
        self.stdout.write(
            f"calibration {calibration.pk} of {encoder_version} ({spec.label}): "
            f"{calibration.clip_count} clips of {calibration.recording_count} recordings, "
            f"{calibration.sampled_clips} sampled, top {calibration.top_n} neighbours each"
            + (f"; {missing} recordings have no clips (run embed_clips)" if missing else "")
        )
        raw = calibration.config.get("raw_thresholds", {})
        self.stdout.write(f"  {'bin':<12} {'in use':>8} {'raw fit':>8}   (fit: {options['fit']})")
        for name, value in calibration.thresholds.items():
            self.stdout.write(f"  {name:<12} {value:>8.4f} {raw.get(name, float('nan')):>8.4f}")
        if max(calibration.thresholds.values()) >= 1.0:
            self.stderr.write(
                "warning: a threshold is at or above 1.0: nothing can reach it (use --fit fisher_z)"
            )
        self.stdout.write(
            f"  top-neighbour fit: mean {calibration.mean:.4f}, sigma {calibration.std:.4f}; "
            f"random pairs: mean {calibration.random_mean:.4f}, sigma {calibration.random_std:.4f}"
        )
        directory = report_directory("audit_calibration")
        plot_calibration(
            calibration.histogram, calibration.thresholds, directory / "calibration.png"
        )
        write_json(
            directory / "summary.json",
            {
                "created": calibration.created_at.isoformat(),
                "headline": {
                    "encoder": str(encoder_version),
                    "clips": calibration.clip_count,
                    **{k: round(v, 4) for k, v in calibration.thresholds.items()},
                },
                "calibration_id": calibration.pk,
                "thresholds": calibration.thresholds,
                "mean": calibration.mean,
                "std": calibration.std,
                "random_mean": calibration.random_mean,
                "random_std": calibration.random_std,
                "histogram": calibration.histogram,
                "config": calibration.config,
                "seconds": time.monotonic() - started,
            },
        )
        self.stdout.write(f"report: {directory}")
