"""python manage.py register_encoder NAME CHECKPOINT: use a pretrained checkpoint (e.g. the
LAION-CLAP music checkpoint) as an encoder version; --activate makes retrieval use it."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog.services.encoders import encoder_register
from config.exceptions import DomainError


class Command(BaseCommand):
    help = "Register an encoder checkpoint (default-clap or laion-clap) as an encoder version."

    def add_arguments(self, parser):
        parser.add_argument("name", choices=["default-clap", "laion-clap"])
        parser.add_argument("checkpoint", type=Path)
        parser.add_argument("--activate", action="store_true")

    def handle(self, *args, name: str, checkpoint: Path, activate: bool, **options):
        try:
            version = encoder_register(name=name, checkpoint_path=checkpoint, activate=activate)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        state = "active" if version.is_active else "registered (not active)"
        self.stdout.write(f"{version} {state}; run `manage.py embed_catalogue` to index with it")
