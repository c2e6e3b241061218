"""python manage.py register_encoder NAME CHECKPOINT: use a pretrained checkpoint (e.g. the
LAION-CLAP music checkpoint) as an encoder version; --activate makes retrieval use it. The
audio-only `musicnn`, `aisfx` and `melody` take a card (catalog/encoders/pretrained/) and serve
the similarity audit through AUDIT_ENCODER."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog.encoders import BUILTIN_ENCODERS
from catalog.services.encoders import encoder_register
from config.exceptions import DomainError


class Command(BaseCommand):
    help = "Register an encoder checkpoint (or an audio-only encoder's card) as a version."

    def add_arguments(self, parser):
        parser.add_argument("name", choices=sorted(BUILTIN_ENCODERS))
        parser.add_argument("checkpoint", type=Path)
        parser.add_argument("--activate", action="store_true")

    def handle(self, *args, name: str, checkpoint: Path, activate: bool, **options):
        try:
            version = encoder_register(name=name, checkpoint_path=checkpoint, activate=activate)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        if version.name == "melody":  # the audit's second score, not its main encoder
            self.stdout.write(
                f"{version} registered as the audit's melody signal (AUDIT_MELODY_ENCODER): run "
                "`manage.py embed_clips --encoder melody --calibrate`"
            )
            return
        if version.config.get("audio_only"):
            self.stdout.write(
                f"{version} registered for the similarity audit: set AUDIT_ENCODER={version} "
                "and run `manage.py embed_clips --calibrate`"
            )
            return
        state = "active" if version.is_active else "registered (not active)"
        self.stdout.write(f"{version} {state}; run `manage.py embed_catalogue` to index with it")
