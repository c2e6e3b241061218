"""python manage.py embed_catalogue: embed what the active encoder has not embedded yet."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.retrieval.runtime import active_encoder_version
from catalog.services.embedding import catalogue_embed, recordings_missing_embeddings
from config.exceptions import DomainError


class Command(BaseCommand):
    help = "Embed recordings (10-s windows + track vector) with the active encoder. Resumable."

    def handle(self, *args, **options):
        try:
            version = active_encoder_version()
            missing = recordings_missing_embeddings(encoder_version=version).count()
            with tqdm(total=missing, unit="rec", desc=f"embed {version}") as bar:
                counts = catalogue_embed(
                    encoder_version=version, on_progress=lambda *_: bar.update(1)
                )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"{version}: embedded {counts['embedded']}, already embedded {counts['already']}, "
            f"failed {counts['failed']}"
        )
        if counts["failed"]:
            raise CommandError(f"{counts['failed']} recordings could not be embedded")
