"""python manage.py embed_clips [--encoder NAME@VERSION] [--calibrate]: 3-s clip embeddings of
every catalogue recording (seed 003 section 3.3.1) for the similarity audit.

Idempotent and resumable: recordings that already have clips for the encoder version and clip
spec are skipped (`--rebuild` embeds them again). `--calibrate` fits the thresholds afterwards
(the same as `manage.py calibrate_audit`) when recordings were embedded or none exist yet.
"""

from __future__ import annotations

import time

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from attribution.audit import AuditError, ClipSpec
from attribution.services.audit import (
    audit_clip_spec,
    audit_encoder_version,
    catalogue_clips_embed,
    current_calibration,
)
from config.exceptions import DomainError


def clip_spec_option(clip_seconds: float | None, hop_seconds: float | None) -> ClipSpec:
    """The settings' clip spec with the command line's overrides."""
    spec = audit_clip_spec()
    try:
        return ClipSpec(
            clip_seconds=spec.clip_seconds if clip_seconds is None else clip_seconds,
            hop_seconds=spec.hop_seconds if hop_seconds is None else hop_seconds,
        )
    except AuditError as exc:
        raise CommandError(str(exc)) from exc


class Command(BaseCommand):
    help = "Embed every catalogue recording as short clips for the similarity audit."

    def add_arguments(self, parser):
        parser.add_argument("--encoder", help="name@version (default: AUDIT_ENCODER or active)")
        parser.add_argument("--clip-seconds", type=float, help="default AUDIT_CLIP_SECONDS")
        parser.add_argument("--hop-seconds", type=float, help="default AUDIT_CLIP_HOP_SECONDS")
        parser.add_argument("--recording", type=int, action="append", help="only these ids")
        parser.add_argument("--rebuild", action="store_true", help="embed embedded ones again")
        parser.add_argument("--calibrate", action="store_true", help="then fit the thresholds")

    def handle(self, *args, **options):
        spec = clip_spec_option(options["clip_seconds"], options["hop_seconds"])
        started = time.monotonic()
        try:
            encoder_version = audit_encoder_version(options["encoder"])

            def progress(recording, n, total, outcome):
                self.stdout.write(f"[{n}/{total}] {recording.pk}: {recording.title} - {outcome}")

            counts = catalogue_clips_embed(
                encoder_version=encoder_version,
                spec=spec,
                recording_ids=options["recording"],
                rebuild=options["rebuild"],
                on_progress=progress,
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"encoder {encoder_version}, clips {spec.label}: {counts['embedded']} recordings "
            f"embedded ({counts['clips']} clips), {counts['already']} already, "
            f"{counts['failed']} failed, in {time.monotonic() - started:.1f} s"
        )
        if options["calibrate"] and (
            counts["embedded"] or not self._calibrated(encoder_version, spec)
        ):
            call_command(
                "calibrate_audit",
                encoder=str(encoder_version),
                clip_seconds=spec.clip_seconds,
                hop_seconds=spec.hop_seconds,
                stdout=self.stdout,
            )
        if counts["failed"]:
            raise CommandError(f"{counts['failed']} recordings could not be embedded")

    @staticmethod
    def _calibrated(encoder_version, spec: ClipSpec) -> bool:
        """Whether a calibration of this clip space exists (nothing new to calibrate then)."""
        try:
            current_calibration(encoder_version=encoder_version, spec=spec)
        except DomainError:
            return False
        return True
